import { createTRPCContext } from "@trpc/tanstack-react-query";
import type { AppRouter } from "../server/api/root";

/** `useTRPC()` gives typed query/mutation options for every procedure of the studio's router. */
export const { TRPCProvider, useTRPC, useTRPCClient } = createTRPCContext<AppRouter>();
