import type { inferRouterInputs, inferRouterOutputs } from "@trpc/server";
import type { AppRouter } from "../server/api/root";

/** What the server sends, as the browser receives it (superjson: dates arrive as dates). */
export type RouterOutputs = inferRouterOutputs<AppRouter>;
export type RouterInputs = inferRouterInputs<AppRouter>;

export type TaskListItem = RouterOutputs["task"]["list"]["items"][number];
export type TaskDetails = RouterOutputs["task"]["get"];
export type TaskStatusName = TaskListItem["status"];
