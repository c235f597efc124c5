"use client";

import type { TRPCSubscriptionStatus } from "@trpc/tanstack-react-query";
import { useTranslation } from "react-i18next";

/** Whether the page is receiving live updates, or waiting for the studio to come back. */
export function LiveIndicator({ status }: { status: TRPCSubscriptionStatus }) {
  const { t } = useTranslation();
  const live = status === "pending";
  return (
    <span className={live ? "live on" : "live off"} data-testid="live-status" data-status={status}>
      {live ? t("live.on") : t("live.reconnecting")}
    </span>
  );
}
