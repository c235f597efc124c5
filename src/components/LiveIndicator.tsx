"use client";

import { useTranslation } from "react-i18next";
import type { LiveState } from "./keep-subscribed";

/** Whether a stream is delivering live, or waiting for the studio (to come back). */
export function LiveIndicator({
  state,
  testId = "live-status",
}: {
  state: LiveState;
  testId?: string;
}) {
  const { t } = useTranslation();
  return (
    <span
      className={state === "live" ? "live on" : "live off"}
      data-testid={testId}
      data-status={state}
      role="status"
    >
      {t(`live.${state}`)}
    </span>
  );
}
