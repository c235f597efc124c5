"use client";

import { progressPercent } from "./progress-percent";

/** A thin bar with the percentage; a dash while the total is unknown. */
export function TaskProgress({ progress, status }: { progress: unknown; status: string }) {
  const percent = progressPercent(progress, status);
  if (percent === null) return <span className="muted">–</span>;
  return (
    <span className="progress" data-testid="task-progress">
      <span className="progress-track">
        <span className="progress-fill" style={{ width: `${percent}%` }} />
      </span>
      <span className="progress-label">{percent}%</span>
    </span>
  );
}
