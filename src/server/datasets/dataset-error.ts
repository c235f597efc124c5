import type { DatasetIssue } from "../../trainers/dataset";

/** Named like tRPC's error codes so that a router can pass them on unchanged. */
export type DatasetErrorCode =
  | "BAD_REQUEST"
  | "NOT_FOUND"
  | "FORBIDDEN"
  | "PAYLOAD_TOO_LARGE"
  | "PRECONDITION_FAILED";

/** A refusal of the dataset store, with a message meant for the person who asked. */
export class DatasetError extends Error {
  readonly code: DatasetErrorCode;
  /** The validation problems when the refusal is about the file's contents. */
  readonly issues: DatasetIssue[];

  constructor(code: DatasetErrorCode, message: string, issues: DatasetIssue[] = []) {
    super(message);
    this.name = "DatasetError";
    this.code = code;
    this.issues = issues;
  }
}
