// Bundles the Node programs (studio server, CLI, runner, built-in trainer, the checkpoint tool
// the Python trainer runs, the exporter that merges a finished task's model) into dist/.
// Next builds the page separately; npm packages stay external and load from node_modules.
// The built-in trainer's hand-written WebAssembly kernels are assembled from their text here.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { build } from "esbuild";
import createWabt from "wabt";

async function assembleKernels() {
  const wabt = await createWabt();
  const features = { simd: true, threads: true };
  const source = "src/trainers/builtin/kernels.wat";
  const module = wabt.parseWat(source, await readFile(source, "utf8"), features);
  try {
    module.resolveNames();
    module.validate(features);
    await mkdir("dist", { recursive: true });
    await writeFile("dist/builtin-kernels.wasm", module.toBinary({}).buffer);
  } finally {
    module.destroy();
  }
}

const entries = {
  server: "src/server.ts",
  "pglite-worker": "src/server/db/pglite-worker.ts",
  cli: "src/cli/main.ts",
  runner: "src/runner/main.ts",
  "builtin-trainer": "src/trainers/builtin/main.ts",
  "builtin-kernel-worker": "src/trainers/builtin/kernel-worker.ts",
  "checkpoint-tool": "src/trainers/checkpoints/tool.ts",
  exporter: "src/trainers/export/main.ts",
  evaluator: "src/trainers/evaluate/main.ts",
};

/**
 * The CLI and the server bundle their npm packages too: a command runs for a fraction of a
 * second and a studio start is waited for, and loading hundreds of package modules one by one
 * cost each of them about as much CPU as their own work. (Packages bundled as CommonJS get a
 * `require` of their own.) PGlite loads its WebAssembly and data files from beside its own
 * module, and Next is loaded only when a page is asked for: both stay in node_modules.
 */
const withPackages = {
  cli: [],
  server: ["@electric-sql/pglite", "next"],
};
const requireBanner =
  'import { createRequire as __studioCreateRequire } from "node:module"; const require = __studioCreateRequire(import.meta.url);';

// Each program separately, so one that does not build never holds back the others' tests.
const results = await Promise.allSettled([
  assembleKernels(),
  ...Object.entries(entries).map(([name, file]) =>
    build({
      entryPoints: { [name]: file },
      outdir: "dist",
      bundle: true,
      platform: "node",
      target: "node20",
      format: "esm",
      ...(withPackages[name]
        ? { external: withPackages[name], banner: { js: requireBanner } }
        : { packages: "external" }),
      sourcemap: "linked",
      logLevel: "error",
    }),
  ),
]);
for (const r of results) if (r.status === "rejected") console.error(r.reason);
if (results.some((r) => r.status === "rejected")) process.exit(1);
