// Bundles the Node programs (studio server, CLI, runner, built-in trainer, the checkpoint tool
// the Python trainer runs, the exporter that merges a finished task's model) into dist/.
// Next builds the page separately; npm packages stay external and load from node_modules.
import { build } from "esbuild";

const entries = {
  server: "src/server.ts",
  "pglite-worker": "src/server/db/pglite-worker.ts",
  cli: "src/cli/main.ts",
  runner: "src/runner/main.ts",
  "builtin-trainer": "src/trainers/builtin/main.ts",
  "checkpoint-tool": "src/trainers/checkpoints/tool.ts",
  exporter: "src/trainers/export/main.ts",
  evaluator: "src/trainers/evaluate/main.ts",
};

// Each program separately, so one that does not build never holds back the others' tests.
const results = await Promise.allSettled(
  Object.entries(entries).map(([name, file]) =>
    build({
      entryPoints: { [name]: file },
      outdir: "dist",
      bundle: true,
      platform: "node",
      target: "node20",
      format: "esm",
      packages: "external",
      sourcemap: "linked",
      logLevel: "error",
    }),
  ),
);
if (results.some((r) => r.status === "rejected")) process.exit(1);
