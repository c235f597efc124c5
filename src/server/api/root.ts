import { datasetRouter } from "./routers/dataset";
import { studioRouter } from "./routers/studio";
import { taskRouter } from "./routers/task";
import { createCallerFactory, router } from "./trpc";

export const appRouter = router({
  task: taskRouter,
  dataset: datasetRouter,
  studio: studioRouter,
});

export type AppRouter = typeof appRouter;
export const createCaller = createCallerFactory(appRouter);
