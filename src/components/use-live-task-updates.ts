"use client";

import { useQueryClient } from "@tanstack/react-query";
import { useSubscription } from "@trpc/tanstack-react-query";
import { useTranslation } from "react-i18next";
import { useTRPC } from "../trpc/context";
import { showTaskNotification, taskNotification } from "./browser-notifications";
import { type LiveState, liveState } from "./live-state";
import { useRetryAfterError } from "./use-retry-after-error";

// an update arriving while a refetch runs joins it instead of restarting it
const REFETCH = { cancelRefetch: false } as const;

/**
 * The page's one stream of task changes. Each update is a hint to refetch what it touches; on
 * every (re)connect everything is refetched, since updates sent while away are not replayed.
 * An update whose event ends, recovers or stalls a task also shows a browser notification, when
 * they are on (./browser-notifications). Returns the stream's state, for the "live" indicator.
 */
export function useLiveTaskUpdates(): LiveState {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const { t } = useTranslation();
  const updates = useSubscription(
    trpc.task.onUpdate.subscriptionOptions(undefined, {
      onStarted: () => {
        void queryClient.invalidateQueries(trpc.task.pathFilter(), REFETCH);
        void queryClient.invalidateQueries(trpc.studio.info.pathFilter(), REFETCH);
      },
      onData: ({ data: update }) => {
        void queryClient.invalidateQueries(trpc.task.list.pathFilter(), REFETCH);
        void queryClient.invalidateQueries(trpc.task.get.queryFilter({ id: update.id }), REFETCH);
        void queryClient.invalidateQueries(trpc.studio.info.pathFilter(), REFETCH);
        const notification = taskNotification(update);
        if (notification) {
          showTaskNotification(
            notification,
            t(`notify.kind.${notification.kind}`, { name: notification.name }),
          );
        }
      },
    }),
  );
  useRetryAfterError(updates.status, updates.reset);
  return liveState(updates);
}
