"use client";

import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { createTRPCClient } from "@trpc/client";
import { type ReactNode, useState } from "react";
import type { AppRouter } from "../server/api/root";
import { TRPCProvider } from "./context";
import { studioLinks } from "./links";

function makeQueryClient() {
  return new QueryClient({
    defaultOptions: {
      // The page shows live state: a short stale time, and no retry storms on a refused call.
      queries: { staleTime: 1_000, retry: 1 },
    },
  });
}

/** One query cache and one tRPC client per browser tab. */
export function TrpcProvider({ children }: { children: ReactNode }) {
  const [queryClient] = useState(makeQueryClient);
  const [trpcClient] = useState(() => createTRPCClient<AppRouter>({ links: studioLinks() }));
  return (
    <QueryClientProvider client={queryClient}>
      <TRPCProvider trpcClient={trpcClient} queryClient={queryClient}>
        {children}
      </TRPCProvider>
    </QueryClientProvider>
  );
}
