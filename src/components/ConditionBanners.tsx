"use client";

import { useEffect, useState } from "react";
import { useTranslation } from "react-i18next";
import { useTRPCClient } from "../trpc/context";
import { conditionBanners, type StudioCondition } from "./condition-banners";
import { keepSubscribed } from "./keep-subscribed";
import { useFormat } from "./use-format";

/**
 * Tells the reader, as it happens, that the database does not answer (or cannot write) and since
 * when, and that the disk nears or is under the free-space floor. The studio pushes each change
 * (studio.onCondition); a banner goes away by itself once its cause is gone.
 */
export function ConditionBanners() {
  const { t } = useTranslation();
  const client = useTRPCClient();
  const format = useFormat();
  const [condition, setCondition] = useState<StudioCondition | null>(null);

  useEffect(
    () =>
      keepSubscribed<StudioCondition>({
        open: (handlers) => client.studio.onCondition.subscribe(undefined, handlers),
        onData: setCondition,
        // the live indicator already says whether the studio's streams are connected
        onState: () => {},
      }),
    [client],
  );

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
