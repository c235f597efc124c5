"use client";

import { useSubscription } from "@trpc/tanstack-react-query";
import { useTranslation } from "react-i18next";
import { useTRPC } from "../trpc/context";
import { conditionBanners } from "./condition-banners";
import { useFormat } from "./use-format";
import { useRetryAfterError } from "./use-retry-after-error";

/**
 * Tells the reader, as it happens, that the database does not answer (or cannot write) and since
 * when, and that the disk nears or is under the free-space floor. The studio pushes each change
 * (studio.onCondition), and the current condition on every (re)connect; a banner goes away by
 * itself once its cause is gone. Whether the stream is connected, the live indicator says.
 */
export function ConditionBanners() {
  const { t } = useTranslation();
  const trpc = useTRPC();
  const format = useFormat();
  const stream = useSubscription(trpc.studio.onCondition.subscriptionOptions());
  useRetryAfterError(stream.status, stream.reset);
  const condition = stream.data;

  if (!condition) return null;
  return conditionBanners(condition).map((banner) => (
    <div
      key={banner.id}
      className={`banner ${banner.tone}`}
      role={banner.tone === "error" ? "alert" : "status"}
      data-testid={`${banner.id}-banner`}
    >
      <p>
        {t(banner.key, {
          ...banner.values,
          since: banner.values.since instanceof Date ? format.time(banner.values.since) : "",
        })}
        {banner.detail && <span className="banner-detail">{banner.detail}</span>}
      </p>
    </div>
  ));
}
