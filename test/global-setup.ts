import { execFileSync } from "node:child_process";

/** Tests run the real programs (runner, trainers, CLI, server), so bundle them once first. */
export default function setup() {
  try {
    execFileSync(process.execPath, ["scripts/build-node.mjs"], { stdio: "inherit" });
  } catch {
    // The failing program was named above; tests that run it fail on their own, the rest still run.
    console.error("global setup: some programs did not build (see above)");
  }
}
