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

  const refresh = () =>
    Promise.all([
      queryClient.invalidateQueries(trpc.task.list.pathFilter()),
      queryClient.invalidateQueries(trpc.studio.info.pathFilter()),
    ]);

  const remove = useMutation(
    trpc.task.delete.mutationOptions({
      onSuccess: async () => {
        queryClient.removeQueries(trpc.task.get.queryFilter({ id: task.id }));
        await refresh();
        onDeleted();
      },
    }),
  );

  return (
    <section aria-labelledby="actions-title">
      <h3 id="actions-title">{t("detail.actions")}</h3>
      <div className="actions">
        <button
          type="button"
          className="danger"
          data-testid="action-delete"
          disabled={!actions.delete || remove.isPending}
          onClick={() => {
            if (window.confirm(t("actions.deleteConfirm", { name: task.name }))) {
              remove.mutate({ id: task.id });
            }
          }}
        >
          {remove.isPending ? t("actions.deleting") : t("actions.delete")}
        </button>
      </div>
      {remove.error && <ErrorNote error={remove.error} />}
    </section>
  );
}
