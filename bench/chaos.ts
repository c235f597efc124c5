// Chaos run: kill the studio again and again while tasks run; check the invariants every cycle.
//   npx tsx bench/chaos.ts [--cycles 10] [--seed 1] [--parallel 3] [--disk-full 1]
// --disk-full 1 (the default as root, who can mount) puts STUDIO_HOME on a small tmpfs and fills
// it now and then; 0 leaves it out.
import { numberFlags } from "./lib/args";
import { runChaos } from "./lib/chaos-run";

const asRoot = process.getuid?.() === 0;
const { "disk-full": diskFull, ...flags } = numberFlags({
  cycles: 10,
  seed: 1,
  parallel: 3,
  "disk-full": asRoot ? 1 : 0,
});
const started = Date.now();
const report = await runChaos({
  ...flags,
  diskFull: diskFull === 1,
  log: (msg) => console.log(msg),
});
console.log(
  JSON.stringify({ ...report, seed: flags.seed, seconds: (Date.now() - started) / 1000 }, null, 2),
);
process.exit(report.violations.length ? 1 : 0);
