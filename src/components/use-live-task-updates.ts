"use client";

import { useQueryClient } from "@tanstack/react-query";
import { useSubscription } from "@trpc/tanstack-react-query";
import { useTRPC } from "../trpc/context";

/**
 * The page's one stream of task changes. Each update is a hint to refetch what it touches; on
 * every (re)connect everything is refetched, since updates sent while away are not replayed.
 * Returns the stream's state, for the "live" indicator.
 */
export function useLiveTaskUpdates() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  // an update arriving while a refetch runs joins it instead of restarting it
  const refetch = { cancelRefetch: false } as const;
  const refreshAll = () => {
    void queryClient.invalidateQueries(trpc.task.pathFilter(), refetch);
    void queryClient.invalidateQueries(trpc.studio.info.pathFilter(), refetch);
  };
  const subscription = useSubscription(
    trpc.task.onUpdate.subscriptionOptions(undefined, {
      onStarted: refreshAll,
      onData: ({ data: update }) => {
        void queryClient.invalidateQueries(trpc.task.list.pathFilter(), refetch);
        void queryClient.invalidateQueries(trpc.task.get.queryFilter({ id: update.id }), refetch);
        void queryClient.invalidateQueries(trpc.studio.info.pathFilter(), refetch);
      },
    }),
  );
  return subscription.status;
}
