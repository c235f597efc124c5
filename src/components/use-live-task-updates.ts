"use client";

import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { useTRPC, useTRPCClient } from "../trpc/context";
import { keepSubscribed, type LiveState } from "./keep-subscribed";

/**
 * The page's one stream of task changes. Each update is a hint to refetch what it touches; on
 * every (re)connect everything is refetched, since updates sent while away are not replayed.
 * Returns the stream's state, for the "live" indicator.
 */
export function useLiveTaskUpdates(): LiveState {
  const trpc = useTRPC();
  const client = useTRPCClient();
  const queryClient = useQueryClient();
  const [state, setState] = useState<LiveState>("connecting");

  useEffect(() => {
    // an update arriving while a refetch runs joins it instead of restarting it
    const refetch = { cancelRefetch: false } as const;
    return keepSubscribed<{ data: { id: string } }>({
      open: (handlers) => client.task.onUpdate.subscribe(undefined, handlers),
      onStarted: () => {
        void queryClient.invalidateQueries(trpc.task.pathFilter(), refetch);
        void queryClient.invalidateQueries(trpc.studio.info.pathFilter(), refetch);
      },
      onData: ({ data: update }) => {
        void queryClient.invalidateQueries(trpc.task.list.pathFilter(), refetch);
        void queryClient.invalidateQueries(trpc.task.get.queryFilter({ id: update.id }), refetch);
        void queryClient.invalidateQueries(trpc.studio.info.pathFilter(), refetch);
      },
      onState: setState,
    });
  }, [client, queryClient, trpc]);

  return state;
}
