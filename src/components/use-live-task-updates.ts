"use client";

import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { useTranslation } from "react-i18next";
import type { TaskUpdate } from "../server/events/bus";
import { useTRPC, useTRPCClient } from "../trpc/context";
import { showTaskNotification, taskNotification } from "./browser-notifications";
import { keepSubscribed, type LiveState } from "./keep-subscribed";

/**
 * The page's one stream of task changes. Each update is a hint to refetch what it touches; on
 * every (re)connect everything is refetched, since updates sent while away are not replayed.
 * An update whose event ends, recovers or stalls a task also shows a browser notification, when
 * they are on (./browser-notifications). Returns the stream's state, for the "live" indicator.
 */
export function useLiveTaskUpdates(): LiveState {
  const trpc = useTRPC();
  const client = useTRPCClient();
  const queryClient = useQueryClient();
  // The instance, not `t`: a language switch changes `t` and would reopen the stream.
  const { i18n } = useTranslation();
  const [state, setState] = useState<LiveState>("connecting");

  useEffect(() => {
    // an update arriving while a refetch runs joins it instead of restarting it
    const refetch = { cancelRefetch: false } as const;
    return keepSubscribed<{ data: TaskUpdate }>({
      open: (handlers) => client.task.onUpdate.subscribe(undefined, handlers),
      onStarted: () => {
        void queryClient.invalidateQueries(trpc.task.pathFilter(), refetch);
        void queryClient.invalidateQueries(trpc.studio.info.pathFilter(), refetch);
      },
      onData: ({ data: update }) => {
        void queryClient.invalidateQueries(trpc.task.list.pathFilter(), refetch);
        void queryClient.invalidateQueries(trpc.task.get.queryFilter({ id: update.id }), refetch);
        void queryClient.invalidateQueries(trpc.studio.info.pathFilter(), refetch);
        const notification = taskNotification(update);
        if (notification) {
          showTaskNotification(
            notification,
            i18n.t(`notify.kind.${notification.kind}`, { name: notification.name }),
          );
        }
      },
      onState: setState,
    });
  }, [client, queryClient, trpc, i18n]);

  return state;
}
