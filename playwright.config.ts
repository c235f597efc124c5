import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defineConfig } from "@playwright/test";

/**
 * The browser tests run against the real studio (`node dist/server.js`, built beforehand by
 * `npm run build`) on a free port with a fresh home folder. Playwright loads this file again in
 * every worker; the runner picks the port and home once and hands them down through the
 * environment, which workers inherit.
 */
function freePort(): number {
  // synchronous, because this file must export its config without awaiting
  const out = execFileSync(process.execPath, [
    "-e",
    "const s=require('node:net').createServer().listen(0,'127.0.0.1',()=>{process.stdout.write(String(s.address().port));s.close()})",
  ]);
  return Number(out.toString());
}

if (!process.env.E2E_STUDIO_PORT) {
  const home = mkdtempSync(join(tmpdir(), "studio-e2e-"));
  process.env.E2E_STUDIO_HOME = home;
  process.env.E2E_STUDIO_PORT = String(freePort());
  // the runner exits only after the studio has stopped, so its home can go then
  process.on("exit", () => rmSync(home, { recursive: true, force: true }));
}
const port = Number(process.env.E2E_STUDIO_PORT);
const baseURL = `http://127.0.0.1:${port}`;

export default defineConfig({
  testDir: "test/e2e",
  testMatch: "**/*.spec.ts",
  outputDir: "test-results",
  fullyParallel: false,
  workers: 1,
  timeout: 30_000,
  expect: { timeout: 10_000 },
  forbidOnly: !!process.env.CI,
  reporter: [["list"]],
  use: {
    baseURL,
    screenshot: "only-on-failure",
    trace: "retain-on-failure",
    launchOptions: {
      // Debian's Chromium: browser downloads are impossible on these machines
      executablePath: "/usr/bin/chromium",
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
      ],
    },
  },
  projects: [{ name: "chromium", use: { browserName: "chromium" } }],
  webServer: {
    command: "node dist/server.js",
    url: `${baseURL}/login`,
    env: {
      STUDIO_HOME: process.env.E2E_STUDIO_HOME!,
      PORT: String(port),
      HOST: "127.0.0.1",
      STUDIO_TOKEN: "",
      DATABASE_URL: "",
      // No hf-peft interpreter on this studio, whatever the machine has: the form says how to set one up.
      STUDIO_PYTHON: "/nonexistent/python3",
      // An evaluation set's scores at the studio's own priority: at 19 (the default) they would
      // wait out whatever else the machine runs (test/trainers/playground.test.ts checks 19).
      STUDIO_EVAL_NICENESS: "0",
    },
    reuseExistingServer: false,
    // A loaded two-core machine can take more than a minute to start the studio.
    timeout: 180_000,
    stdout: "pipe",
    stderr: "pipe",
    // Playwright's default is SIGKILL: the studio must get the chance to close its database
    gracefulShutdown: { signal: "SIGTERM", timeout: 10_000 },
  },
});
