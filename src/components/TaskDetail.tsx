"use client";

import { useQuery } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { useTRPC } from "../trpc/context";
import { AdapterDownloads } from "./AdapterDownloads";
import { AttemptList } from "./AttemptList";
import { ErrorNote } from "./ErrorNote";
import { EventTimeline } from "./EventTimeline";
import { LogViewer } from "./LogViewer";
import { LogWarnings } from "./LogWarnings";
import { LossChart } from "./LossChart";
import { ProgressPanel } from "./ProgressPanel";
import { StatusBadge } from "./StatusBadge";
import { SystemChart } from "./SystemChart";
import { TaskActions } from "./TaskActions";
import { TaskSettings } from "./TaskSettings";
import { useFormat } from "./use-format";

/** Live updates drive refreshes; this slow poll only bounds how stale a missed one leaves the view. */
const REFRESH_MS = 15_000;

interface TaskDetailProps {
  id: string;
  onClose: () => void;
}

export function TaskDetail({ id, onClose }: TaskDetailProps) {
  const { t } = useTranslation();
  const trpc = useTRPC();
  const format = useFormat();
  const details = useQuery(
    trpc.task.get.queryOptions(
      { id },
      {
        refetchInterval: REFRESH_MS,
        retry: (count, error) => error.data?.code !== "NOT_FOUND" && count < 1,
      },
    ),
  );

  const header = (title: string) => (
    <header className="panel-header">
      <h2>{title}</h2>
      <button type="button" className="secondary" onClick={onClose} data-testid="detail-close">
        {t("detail.close")}
      </button>
    </header>
  );

  if (details.isPending) {
    return (
      <section className="panel">
        {header(t("detail.title"))}
        <p className="muted">{t("detail.loading")}</p>
      </section>
    );
  }
  if (details.error) {
    const gone = details.error.data?.code === "NOT_FOUND";
    return (
      <section className="panel">
        {header(t("detail.title"))}
        {gone ? (
          <p className="muted">{t("detail.notFound")}</p>
        ) : (
          <ErrorNote error={details.error} />
        )}
      </section>
    );
  }

  const { task, attempts, events, queuePosition } = details.data;
  return (
    <section className="panel detail" data-testid="task-detail" data-task-id={task.id}>
      {header(task.name)}
      <div className="detail-summary">
        <StatusBadge status={task.status} />
        <span className="muted mono" title={t("detail.id")}>
          {task.id}
        </span>
      </div>
      {task.statusReason && (
        <p className="reason">
          <strong>{t("detail.reason")}:</strong> {task.statusReason}
        </p>
      )}
      {queuePosition !== null && (
        <p className="reason" data-testid="queue-position" data-position={queuePosition}>
          {t("detail.queuePosition", { position: queuePosition })}
        </p>
      )}
      <TaskActions details={details.data} onDeleted={onClose} />
      <ProgressPanel progress={task.progress} status={task.status} />
      <LossChart id={task.id} version={new Date(task.updatedAt).toISOString()} />
      <SystemChart id={task.id} active={task.status === "training"} />
      <LogWarnings events={events} attempt={task.currentAttempt || null} />
      <LogViewer id={task.id} />
      <AdapterDownloads task={task} />
      <EventTimeline events={events} />
      <AttemptList attempts={attempts} />
      <TaskSettings task={task} />
      <dl className="facts compact">
        <dt>{t("detail.created")}</dt>
        <dd>{format.dateTime(task.createdAt)}</dd>
        <dt>{t("detail.updated")}</dt>
        <dd>{format.dateTime(task.updatedAt)}</dd>
        <dt>{t("detail.finished")}</dt>
        <dd>{format.dateTime(task.finishedAt)}</dd>
        {task.lastCheckpoint && (
          <>
            <dt>{t("detail.lastCheckpoint")}</dt>
            <dd className="mono">{task.lastCheckpoint}</dd>
          </>
        )}
      </dl>
    </section>
  );
}
