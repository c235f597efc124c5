"use client";

import { useEffect, useState } from "react";
import { useTranslation } from "react-i18next";
import { formatDuration } from "../shared/format-duration";
import type { TaskStatusName } from "../trpc/types";
import { progressPercent } from "./progress-percent";
import { formatEpoch, formatLearningRate, formatLoss, progressView } from "./progress-view";

const RUNNING: readonly TaskStatusName[] = ["preparing", "training"];

/** A clock that ticks once a second while `on`, so elapsed time moves between updates. */
function useNow(on: boolean): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!on) return;
    const timer = setInterval(() => setNow(Date.now()), 1_000);
    return () => clearInterval(timer);
  }, [on]);
  return now;
}

/** The task's live progress: bar, epoch, step, loss, learning rate, elapsed time and ETA. */
export function ProgressPanel({ progress, status }: { progress: unknown; status: TaskStatusName }) {
  const { t } = useTranslation();
  const running = RUNNING.includes(status);
  const now = useNow(running);
  const view = progressView(progress, running, now);
  const percent = progressPercent(progress, status);
  const of = (value: string | null, total: number | null) =>
    value === null ? "–" : total === null ? value : t("progress.of", { value, total });

  return (
    <section aria-labelledby="progress-title" data-testid="progress-panel">
      <h3 id="progress-title">{t("detail.progress")}</h3>
      <div className="progress large" data-testid="progress-bar" data-percent={percent ?? ""}>
        <span className="progress-track">
          <span className="progress-fill" style={{ width: `${percent ?? 0}%` }} />
        </span>
        <span className="progress-label">{percent === null ? "–" : `${percent}%`}</span>
      </div>
      <dl className="progress-facts">
        <div>
          <dt>{t("progress.epoch")}</dt>
          <dd data-testid="progress-epoch">
            {of(view.epoch === null ? null : formatEpoch(view.epoch), view.totalEpochs)}
          </dd>
        </div>
        <div>
          <dt>{t("progress.step")}</dt>
          <dd data-testid="progress-step" data-step={view.step ?? ""}>
            {of(view.step === null ? null : String(view.step), view.totalSteps)}
          </dd>
        </div>
        <div>
          <dt>{t("progress.loss")}</dt>
          <dd data-testid="progress-loss">{view.loss === null ? "–" : formatLoss(view.loss)}</dd>
        </div>
        {view.evalLoss !== null && (
          <div>
            <dt>{t("progress.evalLoss")}</dt>
            <dd>{formatLoss(view.evalLoss)}</dd>
          </div>
        )}
        <div>
          <dt>{t("progress.learningRate")}</dt>
          <dd>{view.learningRate === null ? "–" : formatLearningRate(view.learningRate)}</dd>
        </div>
        <div>
          <dt>{t("progress.elapsed")}</dt>
          <dd data-testid="progress-elapsed">
            {view.elapsedSeconds === null ? "–" : formatDuration(view.elapsedSeconds)}
          </dd>
        </div>
        <div>
          <dt>{t("progress.eta")}</dt>
          <dd data-testid="progress-eta">
            {view.etaSeconds === null ? "–" : formatDuration(view.etaSeconds)}
          </dd>
        </div>
        {view.skippedEvents > 0 && (
          <div className="progress-skipped" title={t("progress.skippedHint")}>
            <dt>{t("progress.skipped")}</dt>
            <dd data-testid="progress-skipped">{view.skippedEvents}</dd>
          </div>
        )}
      </dl>
    </section>
  );
}
