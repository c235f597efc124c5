"use client";

import { useInfiniteQuery } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { useTRPC } from "../trpc/context";
import type { TaskStatusName } from "../trpc/types";
import { ErrorNote } from "./ErrorNote";
import { StatusFilter } from "./StatusFilter";
import { TaskRow } from "./TaskRow";

const PAGE_SIZE = 25;
/** Live updates drive refreshes; this slow poll only bounds how stale a missed one leaves the view. */
const REFRESH_MS = 15_000;

interface TaskListProps {
  status: TaskStatusName | null;
  onStatusChange: (status: TaskStatusName | null) => void;
  selectedId: string | null;
  onSelect: (id: string) => void;
}

/** Newest first, a page at a time along the list's keyset cursor. */
export function TaskList({ status, onStatusChange, selectedId, onSelect }: TaskListProps) {
  const { t } = useTranslation();
  const trpc = useTRPC();
  const list = useInfiniteQuery(
    trpc.task.list.infiniteQueryOptions(
      { limit: PAGE_SIZE, status: status ? [status] : undefined },
      { getNextPageParam: (page) => page.nextCursor, refetchInterval: REFRESH_MS },
    ),
  );
  const tasks = list.data?.pages.flatMap((page) => page.items) ?? [];

  return (
    <section className="panel task-list" aria-labelledby="task-list-title">
      <header className="panel-header">
        <h2 id="task-list-title">{t("list.title")}</h2>
        <span className="muted" data-testid="task-count" data-count={tasks.length}>
          {t("list.shown", { count: tasks.length })}
        </span>
      </header>
      <StatusFilter value={status} onChange={onStatusChange} />
      {list.error && <ErrorNote error={list.error} />}
      {list.isPending ? (
        <p className="muted">{t("list.loading")}</p>
      ) : tasks.length === 0 ? (
        <p className="muted" data-testid="task-list-empty">
          {status ? t("list.emptyFiltered") : t("list.empty")}
        </p>
      ) : (
        <div className="table-scroll">
          <table className="tasks" data-testid="task-table">
            <thead>
              <tr>
                <th>{t("list.columns.name")}</th>
                <th className="col-model">{t("list.columns.model")}</th>
                <th className="col-dataset">{t("list.columns.dataset")}</th>
                <th className="col-trainer">{t("list.columns.trainer")}</th>
                <th>{t("list.columns.status")}</th>
                <th>{t("list.columns.progress")}</th>
                <th className="col-created">{t("list.columns.created")}</th>
              </tr>
            </thead>
            <tbody>
              {tasks.map((task) => (
                <TaskRow
                  key={task.id}
                  task={task}
                  selected={task.id === selectedId}
                  onSelect={onSelect}
                />
              ))}
            </tbody>
          </table>
        </div>
      )}
      {list.hasNextPage && (
        <button
          type="button"
          className="secondary"
          disabled={list.isFetchingNextPage}
          onClick={() => void list.fetchNextPage()}
        >
          {list.isFetchingNextPage ? t("list.loading") : t("list.loadMore")}
        </button>
      )}
    </section>
  );
}
