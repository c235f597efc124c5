import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseRunnerArgs } from "../../src/runner/args";
import {
  BATCH_SCRIPT,
  batchScriptPath,
  jobName,
  sbatchArgv,
  sbatchEnv,
} from "../../src/server/supervisor/slurm-script";

const nasty = ["a b", "", "$(touch /tmp/pwned)", "new\nline", "it's", '"quoted"', "--", "*"];
const spec = {
  taskDir: "/home/u/.finetune-studio/tasks/t 1",
  attempt: 2,
  command: { file: "/usr/bin/python3", args: nasty, env: { PYTHONUNBUFFERED: "1" } },
};
const options = { nodePath: "/usr/bin/node", runnerPath: "/opt/studio/dist/runner.js", gpus: 0 };

describe("sbatch argv", () => {
  it("puts options first, then the script, then the runner's argv untouched", () => {
    const argv = sbatchArgv(spec, { ...options, partition: "gpu", gpus: 2, timeLimit: "1:00:00" });
    const script = argv.indexOf(batchScriptPath(spec.taskDir, 2));
    expect(argv.slice(0, script)).toEqual([
      "--parsable",
      "--no-requeue",
      "--job-name=studio-t_1-a2",
      "--chdir=/home/u/.finetune-studio/tasks/t 1",
      "--output=/home/u/.finetune-studio/tasks/t 1/slurm-attempt-2.out",
      "--export=ALL",
      "--partition=gpu",
      "--gres=gpu:2",
      "--time=1:00:00",
    ]);
    const [node, runner, ...runnerArgs] = argv.slice(script + 1);
    expect([node, runner]).toEqual([options.nodePath, options.runnerPath]);
    expect(parseRunnerArgs(runnerArgs)).toEqual({
      taskDir: spec.taskDir,
      attempt: 2,
      daemonize: false,
      shareGroup: true,
      limits: {},
      file: "/usr/bin/python3",
      args: nasty,
    });
  });

  it("asks Slurm for the memory and CPUs, and leaves the run time and priority to the runner", () => {
    const argv = sbatchArgv(
      { ...spec, limits: { memoryMb: 2048, cpus: 1.5, maxRunSeconds: 600, nice: 5 } },
      options,
    );
    expect(argv).toContain("--mem=2048M");
    expect(argv).toContain("--cpus-per-task=2");
    const runnerArgs = argv.slice(argv.indexOf(options.runnerPath) + 1);
    expect(parseRunnerArgs(runnerArgs).limits).toEqual({ maxRunSeconds: 600, nice: 5 });
  });

  it("asks for no GPU, partition or time limit unless given", () => {
    const argv = sbatchArgv(spec, options);
    expect(argv.some((a) => /^--(gres|partition|time)=/.test(a))).toBe(false);
  });

  it("passes operator options as separate words before the script", () => {
    const argv = sbatchArgv(spec, { ...options, extraArgs: ["--account=ml", "--qos=low"] });
    expect(argv.indexOf("--qos=low")).toBeLessThan(argv.indexOf(batchScriptPath(spec.taskDir, 2)));
  });

  it("refuses a task folder with '%' (Slurm expands it in --output)", () => {
    expect(() => sbatchArgv({ ...spec, taskDir: "/tmp/50%" }, options)).toThrow(/'%'/);
  });

  it("refuses a GPU count that is not a whole number", () => {
    expect(() => sbatchArgv(spec, { ...options, gpus: 1.5 })).toThrow(/whole number/);
  });
});

describe("job name", () => {
  it("is the task id and attempt, with odd characters replaced", () => {
    expect(jobName("/x/tasks/abc-123/", 1)).toBe("studio-abc-123-a1");
    expect(jobName("/x/tasks/a|b c", 3)).toBe("studio-a_b_c-a3");
  });
});

describe("sbatch environment", () => {
  it("is the trainer's, plus the cluster's config, without what Slurm must decide", () => {
    const env = sbatchEnv(
      {
        PATH: "/venv/bin:/usr/bin",
        PYTHONUNBUFFERED: "1",
        SLURM_JOB_ID: "5",
        SLURM_CONF: "/studio/runs/inside/a/job.conf",
        SBATCH_PARTITION: "other",
        CUDA_VISIBLE_DEVICES: "0",
      },
      "/etc/slurm/slurm.conf",
    );
    expect(env).toEqual({
      PATH: "/venv/bin:/usr/bin",
      PYTHONUNBUFFERED: "1",
      SLURM_CONF: "/etc/slurm/slurm.conf",
    });
  });

  it("leaves SLURM_CONF out when none is configured (sbatch then reads /etc/slurm)", () => {
    expect(sbatchEnv({ HOME: "/root" }, undefined)).toEqual({ HOME: "/root" });
  });
});

describe("the batch script", () => {
  const dir = mkdtempSync(join(tmpdir(), "slurm-script-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("hands its arguments to the program byte for byte, with no shell expansion", () => {
    const script = join(dir, "job.sh");
    writeFileSync(script, BATCH_SCRIPT);
    chmodSync(script, 0o755);
    const printArgs = "process.stdout.write(JSON.stringify(process.argv.slice(1)))";
    const out = execFileSync(script, [process.execPath, "-e", printArgs, ...nasty], {
      encoding: "utf8",
    });
    expect(JSON.parse(out)).toEqual(nasty);
  });
});
