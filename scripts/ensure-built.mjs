// `npm start` builds only when the sources are newer than the last build, so a restart is quick.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

function newest(dir) {
  let t = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    t = Math.max(t, entry.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

const builtAt = existsSync(".next/BUILD_ID") ? statSync(".next/BUILD_ID").mtimeMs : 0;
const sourcesAt = Math.max(newest("src"), statSync("package.json").mtimeMs);
if (builtAt < sourcesAt || !existsSync("dist/server.js")) {
  console.log("building the studio (once after each change)…");
  execFileSync("npm", ["run", "build"], { stdio: "inherit" });
}
