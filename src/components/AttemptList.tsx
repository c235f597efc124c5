"use client";

import { useTranslation } from "react-i18next";
import type { TaskDetails } from "../trpc/types";
import { useFormat } from "./use-format";

type Attempt = TaskDetails["attempts"][number];

/** Every run of the task, newest first, with how it ended. */
export function AttemptList({ attempts }: { attempts: Attempt[] }) {
  const { t } = useTranslation();
  return (
    <section aria-labelledby="attempts-title">
      <h3 id="attempts-title">{t("detail.attempts")}</h3>
      {attempts.length === 0 ? (
        <p className="muted">{t("detail.noAttempts")}</p>
      ) : (
        <ul className="attempts" data-testid="attempt-list">
          {attempts.map((attempt) => (
            <AttemptItem key={attempt.id} attempt={attempt} />
          ))}
        </ul>
      )}
    </section>
  );
}

function AttemptItem({ attempt }: { attempt: Attempt }) {
  const { t } = useTranslation();
  const format = useFormat();
  // On a cluster the attempt is a Slurm job (its node is the host), not a local pid.
  const handle = attempt.handle as { kind?: string; jobId?: string } | null;
  const jobId = handle?.kind === "slurm" ? handle.jobId : null;
  const outcome =
    attempt.exitCode !== null
      ? t("detail.attempt.exitCode", { code: attempt.exitCode })
      : attempt.signal
        ? t("detail.attempt.signal", { signal: attempt.signal })
        : attempt.endedAt
          ? "–"
          : t("detail.attempt.running");
  return (
    <li data-testid="attempt">
      <strong>{t("detail.attempt.number", { number: attempt.number })}</strong>
      <dl className="facts compact">
        {jobId ? (
          <>
            <dt>{t("detail.attempt.job")}</dt>
            <dd className="mono">{jobId}</dd>
          </>
        ) : (
          <>
            <dt>{t("detail.attempt.pid")}</dt>
            <dd className="mono">{attempt.pid ?? "–"}</dd>
          </>
        )}
        <dt>{t("detail.attempt.host")}</dt>
        <dd className="mono">{attempt.host}</dd>
        <dt>{t("detail.attempt.gpus")}</dt>
        <dd className="mono">{attempt.gpus.length ? attempt.gpus.join(", ") : "–"}</dd>
        <dt>{t("detail.attempt.started")}</dt>
        <dd>{format.dateTime(attempt.startedAt ?? attempt.intentAt)}</dd>
        <dt>{t("detail.attempt.ended")}</dt>
        <dd>{format.dateTime(attempt.endedAt)}</dd>
        <dt>{t("detail.attempt.exit")}</dt>
        <dd>{outcome}</dd>
        {attempt.resumeFrom && (
          <>
            <dt>{t("detail.attempt.resumeFrom")}</dt>
            <dd className="mono">{attempt.resumeFrom}</dd>
          </>
        )}
        {attempt.error && (
          <>
            <dt>{t("detail.attempt.error")}</dt>
            <dd className="error-text">{attempt.error}</dd>
          </>
        )}
      </dl>
    </li>
  );
}
