"use client";

import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { useTRPC } from "../trpc/context";
import type { TaskDetails } from "../trpc/types";
import { ErrorNote } from "./ErrorNote";

interface TaskActionsProps {
  details: TaskDetails;
  onDeleted: () => void;
}

/** The buttons the task's status allows, as the server's `actions` say. */
export function TaskActions({ details, onDeleted }: TaskActionsProps) {
  const { t } = useTranslation();
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const { task, actions } = details;
  const id = task.id;

  const refresh = () =>
    Promise.all([
      queryClient.invalidateQueries(trpc.task.get.queryFilter({ id })),
      queryClient.invalidateQueries(trpc.task.list.pathFilter()),
      queryClient.invalidateQueries(trpc.studio.info.pathFilter()),
    ]);
  const afterChange = { onSuccess: refresh };

  const start = useMutation(trpc.task.start.mutationOptions(afterChange));
  const cancel = useMutation(trpc.task.cancel.mutationOptions(afterChange));
  const pause = useMutation(trpc.task.pause.mutationOptions(afterChange));
  const resume = useMutation(trpc.task.resume.mutationOptions(afterChange));
  const retry = useMutation(trpc.task.retry.mutationOptions(afterChange));
  const remove = useMutation(
    trpc.task.delete.mutationOptions({
      onSuccess: async () => {
        queryClient.removeQueries(trpc.task.get.queryFilter({ id }));
        await Promise.all([
          queryClient.invalidateQueries(trpc.task.list.pathFilter()),
          queryClient.invalidateQueries(trpc.studio.info.pathFilter()),
        ]);
        onDeleted();
      },
    }),
  );

  const busy = [start, cancel, pause, resume, retry, remove].some((m) => m.isPending);
  const error = [start, cancel, pause, resume, retry, remove].find((m) => m.error)?.error;

  const button = (
    name: string,
    enabled: boolean,
    run: () => void,
    className: string | undefined = undefined,
  ) => (
    <button
      type="button"
      className={className}
      data-testid={`action-${name}`}
      disabled={!enabled || busy}
      onClick={run}
    >
      {t(`actions.${name}`)}
    </button>
  );

  return (
    <section aria-labelledby="actions-title">
      <h3 id="actions-title">{t("detail.actions")}</h3>
      <div className="actions">
        {button("start", actions.start, () => start.mutate({ id }))}
        {button("pause", actions.pause, () => pause.mutate({ id }), "secondary")}
        {button("resume", actions.resume, () => resume.mutate({ id }))}
        {button(
          "retry",
          actions.retry,
          () => retry.mutate({ id, fromCheckpoint: false }),
          "secondary",
        )}
        {button(
          "resumeFromCheckpoint",
          actions.resumeFromCheckpoint,
          () => retry.mutate({ id, fromCheckpoint: true }),
          "secondary",
        )}
        {button(
          "cancel",
          actions.cancel,
          () => {
            if (window.confirm(t("actions.cancelConfirm", { name: task.name })))
              cancel.mutate({ id });
          },
          "danger",
        )}
        {button(
          "delete",
          actions.delete,
          () => {
            if (window.confirm(t("actions.deleteConfirm", { name: task.name })))
              remove.mutate({ id });
          },
          "danger",
        )}
      </div>
      {error && <ErrorNote error={error} />}
    </section>
  );
}
