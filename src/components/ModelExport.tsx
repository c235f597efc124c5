"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { formatFileSize } from "../shared/file-size";
import { useTRPC } from "../trpc/context";
import { ErrorNote } from "./ErrorNote";

const REFRESH_MS = 1000;

/**
 * Export a merged model: the task's adapter folded into its base, written by a process of its
 * own into the task's export folder; its state is polled while it runs, then its files listed.
 */
export function ModelExport({ taskId }: { taskId: string }) {
  const { t } = useTranslation();
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const status = useQuery({
    ...trpc.task.exportStatus.queryOptions({ id: taskId }),
    refetchInterval: (query) => (query.state.data?.state === "running" ? REFRESH_MS : false),
  });
  const start = useMutation(
    trpc.task.export.mutationOptions({
      onSuccess: (started) =>
        queryClient.setQueryData(trpc.task.exportStatus.queryKey({ id: taskId }), started),
    }),
  );
  const current = status.data;
  const running = current?.state === "running";
  return (
    <div data-testid="model-export">
      <button
        type="button"
        className="secondary"
        data-testid="action-export"
        disabled={start.isPending || running}
        onClick={() => start.mutate({ id: taskId })}
      >
        {t(current?.state === "done" ? "export.again" : "export.start")}
      </button>{" "}
      {running && <span className="muted">{t("export.running")}</span>}
      {current?.state === "failed" && (
        <p className="error-text">{t("export.failed", { reason: current.reason })}</p>
      )}
      {current?.state === "done" && (
        <ul className="downloads" data-testid="export-files">
          {current.files.map((file) => (
            <li key={file.name}>
              <a href={`/api/tasks/${taskId}/export/${file.name}`} download data-file={file.name}>
                {file.name}
              </a>{" "}
              <span className="muted">{formatFileSize(file.size)}</span>
            </li>
          ))}
        </ul>
      )}
      {start.error && <ErrorNote error={start.error} />}
    </div>
  );
}
