"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { useTranslation } from "react-i18next";
import type { InputIssue } from "../server/api/zod-error";
import { useTRPC } from "../trpc/context";
import { ErrorNote } from "./ErrorNote";
import { fileToBase64 } from "./file-base64";
import { serverValidationIssues } from "./server-issues";

const PREVIEW_ROWS = 5;

/** The id of the list of stored datasets that the dataset field suggests from. */
export const DATASET_OPTIONS_ID = "dataset-options";

/**
 * What goes with the dataset field: the stored datasets it suggests (a datalist, so the field
 * stays one box that also takes a path), an upload that adds one and picks it (its problems
 * listed with their line numbers when the server refuses it), and the first rows of the chosen
 * dataset.
 */
export function DatasetPicker({
  value,
  onChange,
}: {
  value: string;
  onChange: (id: string) => void;
}) {
  const { t } = useTranslation();
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const datasets = useQuery(trpc.dataset.list.queryOptions());
  const chosen = datasets.data?.find((dataset) => dataset.id === value);
  const preview = useQuery(trpc.dataset.preview.queryOptions({ id: value }, { enabled: !!chosen }));
  const [issues, setIssues] = useState<InputIssue[]>([]);
  const upload = useMutation(
    trpc.dataset.upload.mutationOptions({
      onSuccess: async (dataset) => {
        setIssues([]);
        await queryClient.invalidateQueries(trpc.dataset.list.pathFilter());
        onChange(dataset.id);
      },
      onError: (error) => setIssues(serverValidationIssues(error)),
    }),
  );

  async function send(file: File | undefined) {
    if (!file) return;
    upload.mutate({ fileName: file.name, contentBase64: await fileToBase64(file) });
  }

  return (
    <div className="dataset-picker" data-testid="dataset-picker">
      <datalist id={DATASET_OPTIONS_ID} data-testid="dataset-options">
        {(datasets.data ?? []).map((dataset) => (
          <option key={dataset.id} value={dataset.id}>
            {t("datasets.option", {
              name: dataset.name,
              rows: dataset.rowCount,
              format: dataset.format,
            })}
          </option>
        ))}
      </datalist>
      <label className="upload">
        <span>{upload.isPending ? t("datasets.uploading") : t("datasets.upload")}</span>
        <input
          type="file"
          accept=".jsonl,.json,application/json"
          data-testid="dataset-upload"
          disabled={upload.isPending}
          onChange={(e) => {
            void send(e.target.files?.[0]);
            e.target.value = "";
          }}
        />
      </label>
      {upload.error &&
        (issues.length > 0 ? (
          <ul className="error-note" role="alert" data-testid="dataset-upload-errors">
            {issues.map((issue, i) => (
              // the server lists issues in file order; several may share a line
              // biome-ignore lint/suspicious/noArrayIndexKey: the list is replaced, never reordered
              <li key={i}>
                {issue.line
                  ? t("datasets.issueAtLine", { line: issue.line, message: issue.message })
                  : issue.message}
              </li>
            ))}
          </ul>
        ) : (
          <ErrorNote error={upload.error} />
        ))}
      {chosen && preview.data && (
        <div>
          <span className="muted">
            {t("datasets.preview", { count: Math.min(PREVIEW_ROWS, preview.data.rows.length) })}
          </span>
          <pre className="dataset-preview" data-testid="dataset-preview">
            {preview.data.rows
              .slice(0, PREVIEW_ROWS)
              .map((row) => JSON.stringify(row))
              .join("\n")}
          </pre>
        </div>
      )}
    </div>
  );
}
