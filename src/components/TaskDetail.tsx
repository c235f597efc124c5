"use client";

import { useQuery } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { tellingReason } from "../shared/status-reason";
import { useTRPC } from "../trpc/context";
import { AdapterDownloads } from "./AdapterDownloads";
import { AttemptList } from "./AttemptList";
import { ErrorNote } from "./ErrorNote";
import { Evaluations } from "./Evaluations";
import { EventTimeline } from "./EventTimeline";
import { LogViewer } from "./LogViewer";
import { LogWarnings } from "./LogWarnings";
import { LossChart } from "./LossChart";
import { chartVersion } from "./loss-series";
import { Playground } from "./Playground";
import { ProgressPanel } from "./ProgressPanel";
import { StatusBadge } from "./StatusBadge";
import { SystemChart } from "./SystemChart";
import { TaskActions } from "./TaskActions";
import { TaskSettings } from "./TaskSettings";
import { ENDED_STATUSES } from "./task-statuses";
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
  const gone = details.error?.data?.code === "NOT_FOUND";
  // A refetch that fails (the studio restarting, its database down) keeps what was shown, with
  // the reason above it: the log and charts under it must not start over.
  if (details.error && (gone || !details.data)) {
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
  const reason = tellingReason(task.status, task.statusReason);
  return (
    <section className="panel detail" data-testid="task-detail" data-task-id={task.id}>
      {header(task.name)}
      {details.error && <ErrorNote error={details.error} />}
      <div className="detail-summary">
        <StatusBadge status={task.status} />
        <span className="muted mono" title={t("detail.id")}>
          {task.id}
        </span>
      </div>
      {reason && (
        <p className="reason" data-testid="status-reason">
          <strong>{t("detail.reason")}:</strong> {reason}
        </p>
      )}
      {queuePosition !== null && (
        <p className="reason" data-testid="queue-position" data-position={queuePosition}>
          {t("detail.queuePosition", { position: queuePosition })}
        </p>
      )}
      <TaskActions details={details.data} onDeleted={onClose} />
      <div className="detail-body">
        <div className="detail-main">
          <ProgressPanel progress={task.progress} status={task.status} />
          <LossChart id={task.id} version={chartVersion(task)} />
          <SystemChart id={task.id} active={task.status === "training"} />
          <LogWarnings events={events} attempt={task.currentAttempt || null} />
          <LogViewer id={task.id} ended={ENDED_STATUSES.includes(task.status)} />
          <AdapterDownloads task={task} />
          <Playground task={task} />
          <Evaluations task={task} />
        </div>
        <div className="detail-aside">
          <TaskSettings task={task} />
          <AttemptList attempts={attempts} />
          <EventTimeline events={events} />
          <h3>{t("detail.times")}</h3>
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
        </div>
      </div>
    </section>
  );
}
