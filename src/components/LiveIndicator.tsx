"use client";

import { useTranslation } from "react-i18next";
import type { LiveState } from "./live-state";

/**
 * Whether a stream is delivering live, or waiting for the studio (to come back); "ended" when
 * nothing more will come through it (a finished task's log), whatever the stream's state.
 */
export function LiveIndicator({
  state,
  testId = "live-status",
}: {
  state: LiveState | "ended";
  testId?: string;
}) {
  const { t } = useTranslation();
  return (
    <span
      className={state === "live" ? "live on" : state === "ended" ? "live ended" : "live off"}
      data-testid={testId}
      data-status={state}
      role="status"
    >
      {t(`live.${state}`)}
    </span>
  );
}
