"use client";

import { useTranslation } from "react-i18next";
import type { TaskStatusName } from "../trpc/types";

export function StatusBadge({ status }: { status: TaskStatusName }) {
  const { t } = useTranslation();
  return (
    <span className={`badge badge-${status}`} data-testid="status-badge" data-status={status}>
      {t(`status.${status}`)}
    </span>
  );
}
