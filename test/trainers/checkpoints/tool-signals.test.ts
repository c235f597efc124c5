import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import { DIST_DIR } from "../../../src/platform/package-root";

/**
 * A stop's SIGTERM goes to the trainer's whole process group, and the checkpoint tool train.py
 * runs is in it. Cut short, a commit made the trainer fail instead of stopping with its
 * checkpoint (seen in CI as an exit code of 1 where 143 was due). The tool is held still in
 * its work here (config.json is a FIFO nothing has written yet), signalled, then let go.
 */
it("the checkpoint tool carries on through the SIGTERM of a stop", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tool-signals-"));
  try {
    const config = join(dir, "config.json");
    execFileSync("mkfifo", [config]);
    const tool = spawn(
      process.execPath,
      [join(DIST_DIR, "checkpoint-tool.js"), "resume", "--task-dir", dir, "--requested", "x"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      tool.once("exit", (code, signal) => resolve({ code, signal })),
    );
    // Opening the FIFO to write waits for the tool to open it to read: it is in its work then.
    const writer = await open(config, "w");
    process.kill(tool.pid!, "SIGTERM");
    process.kill(tool.pid!, "SIGINT");
    await new Promise((r) => setTimeout(r, 200));
    await writer.write("not a config");
    await writer.close();
    const end = await ended;
    // Not ended by the signals: by its own answer to what it read (here, that it is no config).
    expect(end.signal).toBeNull();
    expect(end.code).toBe(1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
