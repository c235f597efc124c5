import { execFileSync } from "node:child_process";

/** Tests run the real programs (runner, trainers, CLI, server), so bundle them once first. */
export default function setup() {
  execFileSync(process.execPath, ["scripts/build-node.mjs"], { stdio: "inherit" });
}
