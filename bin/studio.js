#!/usr/bin/env node
// The `studio` command: a thin launcher for the bundled CLI (built by `npm install` / `npm run build`).
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
if (!existsSync(`${root}dist/cli.js`)) {
  execFileSync(process.execPath, [`${root}scripts/build-node.mjs`], {
    cwd: root,
    stdio: "inherit",
  });
}
await import("../dist/cli.js");
