import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hfPeftEnvironment, ONE_THREAD } from "../helpers/hf-peft";
import { TestStudio } from "../helpers/studio";

const run = promisify(execFile);
const CLI = join(import.meta.dirname, "../../dist/cli.js");

/**
 * The Hugging Face PEFT trainer through the studio, as a person uses it: set up with
 * `studio setup hf-peft` (the environment the global setup made is reused, as a second setup on
 * one machine would), then tasks created and started through the studio's API, training a tiny
 * Llama on the CPU.
 */
describe("the hf-peft trainer through the studio", () => {
  const env = hfPeftEnvironment();
  let studio: TestStudio;
  const bin = mkdtempSync(join(tmpdir(), "bare-python-"));

  beforeAll(async () => {
    studio = await TestStudio.create("pglite", {
      ...ONE_THREAD,
      STUDIO_PYTHON: "",
      HF_HUB_OFFLINE: "1",
      // Until the setup runs, the studio's python3 is one without site-packages, so "not set up"
      // holds whatever this machine's own python3 has installed.
      PATH: `${bareBin(bin)}:${process.env.PATH}`,
    });
    await studio.start();
  });
  afterAll(async () => {
    await studio?.dispose();
    rmSync(bin, { recursive: true, force: true });
  });

  it("says it is not set up and how, refuses to start, then runs once `studio setup hf-peft` ran", async () => {
    const before = await studio.client.studio.trainers.query();
    expect(before.hfPeft).toMatchObject({
      ok: false,
      source: "default",
      python: "python3",
      setupCommand: "studio setup hf-peft",
    });
    expect(before.hfPeft.problems).toContainEqual(expect.stringMatching(/^torch is not installed/));

    const task = await studio.client.task.create.mutate({
      name: "peft",
      model: env.model,
      dataset: "sample",
      trainer: "hf-peft",
    });
    await expect(studio.client.task.start.mutate({ id: task.id })).rejects.toThrow(
      /the Python trainer cannot run here \(python3\): torch is not installed.*; set it up with "studio setup hf-peft"/,
    );

    // The person's command, while the studio runs: it reuses a ready environment of the same
    // requirements, checks it and records it in this studio's home.
    const { stdout } = await run(process.execPath, [CLI, "setup", "hf-peft", "--venv", env.venv], {
      env: { ...process.env, STUDIO_HOME: studio.home },
    });
    expect(stdout).toContain(`python:      ${env.python} (Python 3.`);
    expect(stdout).toMatch(/torch: {7}2\.13\.0\+cpu, CPU only/);
    expect(stdout).toContain(`recorded in: ${join(studio.home, "hf-peft.json")}`);

    const after = await studio.client.studio.trainers.query();
    expect(after.hfPeft).toMatchObject({ ok: true, source: "setup", python: env.python });
    expect(after.hfPeft.summary.packages.torch).toBe("2.13.0+cpu");
    expect(after.hfPeft.summary.cuda.devices).toEqual([]);
    await studio.client.task.cancel.mutate({ id: task.id });
  });
});

/** `bin`, holding a python3 that is this machine's, run without site-packages. */
function bareBin(bin: string): string {
  const real = execFileSync("python3", ["-c", "import sys; print(sys.executable)"], {
    encoding: "utf8",
  }).trim();
  writeFileSync(join(bin, "python3"), `#!/bin/sh\nexec ${real} -S "$@"\n`, { mode: 0o755 });
  return bin;
}
