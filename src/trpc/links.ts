import { httpBatchStreamLink, httpSubscriptionLink, splitLink, type TRPCLink } from "@trpc/client";
import superjson from "superjson";
import type { AppRouter } from "../server/api/root";

/** The custom server answers tRPC itself at this path, before Next sees the request. */
export const TRPC_URL = "/api/trpc";

/** Subscriptions travel as server-sent events; queries and mutations are batched over one stream. */
export function studioLinks(): TRPCLink<AppRouter>[] {
  return [
    splitLink({
      condition: (op) => op.type === "subscription",
      true: httpSubscriptionLink({ url: TRPC_URL, transformer: superjson }),
      false: httpBatchStreamLink({ url: TRPC_URL, transformer: superjson }),
    }),
  ];
}
