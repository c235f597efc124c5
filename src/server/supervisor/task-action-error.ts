/** A user action the task's current state does not allow; the code is tRPC's. */
export class TaskActionError extends Error {
  constructor(
    readonly code: "NOT_FOUND" | "CONFLICT" | "PRECONDITION_FAILED",
    message: string,
  ) {
    super(message);
    this.name = "TaskActionError";
  }
}
