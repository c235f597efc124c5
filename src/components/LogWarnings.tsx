"use client";

import { useTranslation } from "react-i18next";
import type { TaskDetails } from "../trpc/types";
import { logWarnings } from "./log-warnings";

/** Above the log: training.log was deleted, replaced, truncated or is missing, and from which byte. */
export function LogWarnings({
  events,
  attempt,
}: {
  events: TaskDetails["events"];
  attempt: number | null;
}) {
  const { t } = useTranslation();
  const warnings = logWarnings(events, attempt);
  if (warnings.length === 0) return null;
  return (
    <div className="reason log-warning" role="status" data-testid="log-warnings">
      <strong>{t("detail.logWarning")}</strong>
      <ul>
        {warnings.map((warning) => (
          <li key={warning.id}>{warning.message}</li>
        ))}
      </ul>
    </div>
  );
}
