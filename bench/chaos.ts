// Chaos run: kill the studio again and again while tasks run; check the invariants every cycle.
//   npx tsx bench/chaos.ts [--cycles 10] [--seed 1] [--parallel 3]
import { numberFlags } from "./lib/args";
import { runChaos } from "./lib/chaos-run";

const flags = numberFlags({ cycles: 10, seed: 1, parallel: 3 });
const started = Date.now();
const report = await runChaos({ ...flags, log: (msg) => console.log(msg) });
console.log(
  JSON.stringify({ ...report, seed: flags.seed, seconds: (Date.now() - started) / 1000 }, null, 2),
);
process.exit(report.violations.length ? 1 : 0);
