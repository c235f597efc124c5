import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { hfPeftScriptPath, type LaunchSettings, trainerCommand } from "../../src/trainers/launch";
import {
  hyperparametersSchema,
  type TaskConfig,
  taskConfigSchema,
} from "../../src/trainers/protocol";

const settings: LaunchSettings = {
  nodePath: "/usr/bin/node",
  distDir: "/opt/studio/dist",
  pythonPath: "/venv/bin/python",
  allowCommandTrainer: false,
};
const script = "/opt/studio/src/trainers/hf-peft/train.py";

function config(overrides: Partial<TaskConfig> = {}): TaskConfig {
  return taskConfigSchema.parse({
    taskId: "t1",
    attempt: 1,
    trainer: "builtin",
    model: "builtin:tiny",
    dataset: { path: "/data/d.jsonl", format: "alpaca" },
    taskDir: "/home/u/.finetune-studio/tasks/t1",
    hyperparameters: {},
    ...overrides,
  });
}
const taskDir = "/home/u/.finetune-studio/tasks/t1";

describe("trainerCommand", () => {
  it("runs the built-in trainer bundle with Node", () => {
    expect(trainerCommand(config(), settings)).toEqual({
      file: "/usr/bin/node",
      args: ["/opt/studio/dist/builtin-trainer.js", "--task-dir", taskDir],
      env: {
        CUDA_VISIBLE_DEVICES: "",
        PYTHONUNBUFFERED: "1",
        TOKENIZERS_PARALLELISM: "false",
        STUDIO_TASK_DIR: taskDir,
      },
    });
  });

  it("runs train.py with the chosen Python on a CPU slot or one GPU", () => {
    const cpu = trainerCommand(config({ trainer: "hf-peft", model: "org/m" }), settings);
    expect(cpu.file).toBe("/venv/bin/python");
    expect(cpu.args).toEqual([script, "--task-dir", taskDir]);
    expect(cpu.env.CUDA_VISIBLE_DEVICES).toBe("");
    expect(cpu.env.STUDIO_NODE).toBe("/usr/bin/node");
    expect(cpu.env.STUDIO_CHECKPOINT_TOOL).toBe("/opt/studio/dist/checkpoint-tool.js");

    const one = trainerCommand(config({ trainer: "hf-peft", gpus: ["3"] }), settings);
    expect(one.args).toEqual([script, "--task-dir", taskDir]);
    expect(one.env.CUDA_VISIBLE_DEVICES).toBe("3");
  });

  it("runs torchrun (through torchrun.py) with the same Python, one process per GPU", () => {
    const cmd = trainerCommand(config({ trainer: "hf-peft", gpus: ["0", "2", "5"] }), settings);
    expect(cmd.file).toBe("/venv/bin/python");
    expect(cmd.args).toEqual([
      "/opt/studio/src/trainers/hf-peft/torchrun.py",
      "--standalone",
      "--nnodes",
      "1",
      "--nproc_per_node",
      "3",
      script,
      "--task-dir",
      taskDir,
    ]);
    expect(cmd.env.CUDA_VISIBLE_DEVICES).toBe("0,2,5");
  });

  it("runs torchrun with the processes asked for on the CPU, and one process when GPUs decide", () => {
    const hp = hyperparametersSchema.parse({ processes: 2 });
    const cpu = trainerCommand(config({ trainer: "hf-peft", hyperparameters: hp }), settings);
    expect(cpu.args).toEqual([
      "/opt/studio/src/trainers/hf-peft/torchrun.py",
      "--standalone",
      "--nnodes",
      "1",
      "--nproc_per_node",
      "2",
      script,
      "--task-dir",
      taskDir,
    ]);
    expect(cpu.env.CUDA_VISIBLE_DEVICES).toBe("");
    const gpu = trainerCommand(
      config({ trainer: "hf-peft", gpus: ["1"], hyperparameters: hp }),
      settings,
    );
    expect(gpu.args).toEqual([script, "--task-dir", taskDir]);
  });

  it("passes the checkpoint to resume from as an argument and in the environment", () => {
    const resumeFrom = `${taskDir}/checkpoints/checkpoint-100`;
    for (const trainer of ["builtin", "hf-peft"] as const) {
      const cmd = trainerCommand(config({ trainer, resumeFrom }), settings);
      expect(cmd.args.slice(-4)).toEqual(["--task-dir", taskDir, "--resume-from", resumeFrom]);
      expect(cmd.env.STUDIO_RESUME_FROM).toBe(resumeFrom);
    }
  });

  it("runs a custom argv exactly as given, only when the operator allows it", () => {
    const custom = config({
      trainer: "command",
      command: ["/usr/bin/python3", "my train.py", "--lr", "1e-4; rm -rf /"],
      resumeFrom: "/ckpt",
    });
    expect(() => trainerCommand(custom, settings)).toThrow(/STUDIO_ALLOW_COMMAND_TRAINER=1/);
    const cmd = trainerCommand(custom, { ...settings, allowCommandTrainer: true });
    expect(cmd.file).toBe("/usr/bin/python3");
    expect(cmd.args).toEqual(["my train.py", "--lr", "1e-4; rm -rf /"]);
    expect(cmd.env.STUDIO_TASK_DIR).toBe(taskDir);
    expect(cmd.env.STUDIO_RESUME_FROM).toBe("/ckpt");
  });

  it("refuses a command trainer without an argv", () => {
    const allowed = { ...settings, allowCommandTrainer: true };
    expect(() => trainerCommand(config({ trainer: "command", command: [] }), allowed)).toThrow(
      /non-empty argv/,
    );
    expect(() => trainerCommand(config({ trainer: "command" }), allowed)).toThrow(/non-empty argv/);
  });

  it("inherits the base environment without the studio's secrets, and overrides what it sets", () => {
    const cmd = trainerCommand(config({ gpus: [] }), {
      ...settings,
      baseEnv: {
        PATH: "/usr/bin",
        HF_HUB_OFFLINE: "1",
        STUDIO_TOKEN: "secret-token-0123456789",
        DATABASE_URL: "postgres://u:p@h/db",
        CUDA_VISIBLE_DEVICES: "0,1",
        STUDIO_RESUME_FROM: "/stale",
        UNSET: undefined,
      },
    });
    expect(cmd.env).toEqual({
      PATH: "/usr/bin",
      HF_HUB_OFFLINE: "1",
      CUDA_VISIBLE_DEVICES: "",
      PYTHONUNBUFFERED: "1",
      TOKENIZERS_PARALLELISM: "false",
      STUDIO_TASK_DIR: taskDir,
    });
  });

  it("points at the train.py that ships in this checkout", () => {
    expect(existsSync(hfPeftScriptPath(join(import.meta.dirname, "../../dist")))).toBe(true);
  });
});
