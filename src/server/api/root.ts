import { datasetRouter } from "./routers/dataset";
import { sessionRouter } from "./routers/session";
import { studioRouter } from "./routers/studio";
import { taskRouter } from "./routers/task";
import { createCallerFactory, router } from "./trpc";

export const appRouter = router({
  task: taskRouter,
  dataset: datasetRouter,
  studio: studioRouter,
  session: sessionRouter,
});

export type AppRouter = typeof appRouter;
export const createCaller = createCallerFactory(appRouter);
