import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  isTrainingBar,
  parseHfLine,
  parseHfOutput,
  type TqdmBar,
} from "../../src/server/supervisor/hf-output-parser";

describe("parseHfLine: logs dicts", () => {
  it("reads a training log with raw floats (older transformers)", () => {
    expect(
      parseHfLine(
        "{'loss': 0.5123, 'grad_norm': 1.2345678, 'learning_rate': 0.00019733333333333335, 'epoch': 0.5}",
      ),
    ).toEqual({
      kind: "train-log",
      loss: 0.5123,
      epoch: 0.5,
      learningRate: 0.00019733333333333335,
      gradNorm: 1.2345678,
      metrics: {
        loss: 0.5123,
        grad_norm: 1.2345678,
        learning_rate: 0.00019733333333333335,
        epoch: 0.5,
      },
    });
  });

  it("reads floats printed as .4g strings (transformers 4.5x)", () => {
    expect(
      parseHfLine(
        "{'loss': '2.811', 'grad_norm': '0.581', 'learning_rate': '8.276e-05', 'epoch': '1'}",
      ),
    ).toMatchObject({
      kind: "train-log",
      loss: 2.811,
      gradNorm: 0.581,
      learningRate: 8.276e-5,
      epoch: 1,
    });
  });

  it("unwraps numpy and torch scalars and reads ints, exponents, nan and inf", () => {
    const parsed = parseHfLine(
      "{'loss': np.float64(0.25), 'grad_norm': tensor(3.5000, device='cuda:0', grad_fn=<AddBackward0>), " +
        "'learning_rate': 2e-05, 'epoch': 1, 'a': nan, 'b': inf, 'c': -inf, 'd': np.float32(-1.5E+3), 'e': 'nan'}",
    );
    expect(parsed).toMatchObject({
      kind: "train-log",
      loss: 0.25,
      gradNorm: 3.5,
      learningRate: 2e-5,
    });
    if (parsed?.kind !== "train-log") throw new Error("expected a train log");
    expect(parsed.metrics.a).toBeNaN();
    expect(parsed.metrics.b).toBe(Number.POSITIVE_INFINITY);
    expect(parsed.metrics.c).toBe(Number.NEGATIVE_INFINITY);
    expect(parsed.metrics.d).toBe(-1500);
    expect(parsed.metrics.e).toBeNaN();
  });

  it("keeps extra numeric keys that TRL logs", () => {
    expect(
      parseHfLine(
        "{'loss': 1.9, 'grad_norm': 0.7, 'learning_rate': 0.0001, 'num_tokens': 20480.0, 'mean_token_accuracy': 0.61, 'epoch': 0.2}",
      ),
    ).toMatchObject({
      kind: "train-log",
      metrics: { num_tokens: 20480, mean_token_accuracy: 0.61 },
    });
  });

  it("reads an evaluation log, with or without epoch", () => {
    expect(
      parseHfLine(
        "{'eval_loss': 1.4, 'eval_runtime': 0.4123, 'eval_samples_per_second': 48.51, 'eval_steps_per_second': 9.702, 'epoch': 3.0}",
      ),
    ).toMatchObject({ kind: "eval-log", evalLoss: 1.4, epoch: 3 });
    expect(parseHfLine("{'eval_loss': '2.2', 'eval_runtime': '1.1'}")).toMatchObject({
      kind: "eval-log",
      evalLoss: 2.2,
      epoch: null,
    });
    expect(parseHfLine("{'eval_runtime': 1.0, 'eval_accuracy': 0.9, 'epoch': 1.0}")).toMatchObject({
      kind: "eval-log",
      evalLoss: null,
    });
  });

  it("reads the final training summary", () => {
    expect(
      parseHfLine(
        "{'train_runtime': 37.52, 'train_samples_per_second': 15.99, 'train_steps_per_second': 0.8, 'train_loss': 2.185, 'epoch': 3.0}",
      ),
    ).toEqual({
      kind: "train-summary",
      trainRuntimeSeconds: 37.52,
      trainLoss: 2.185,
      epoch: 3,
      metrics: {
        train_runtime: 37.52,
        train_samples_per_second: 15.99,
        train_steps_per_second: 0.8,
        train_loss: 2.185,
        epoch: 3,
      },
    });
  });

  it("tolerates double quotes, escapes, spaces and a trailing comma", () => {
    expect(parseHfLine(`  { "loss" : 1 , 'epoch':2, }  `)).toMatchObject({
      kind: "train-log",
      loss: 1,
    });
    expect(parseHfLine(`{'lo\\'ss': 1, 'loss': 2, 'epoch': 0.1}`)).toMatchObject({
      metrics: { "lo'ss": 1, loss: 2 },
    });
  });

  it.each([
    ["a user's dict with other keys", "{'model': 'gpt2', 'lora_r': 8, 'epochs': 3}"],
    ["a loss without epoch", "{'loss': 0.5}"],
    ["a non-numeric value", "{'loss': 'mse', 'epoch': 3}"],
    ["a nested value", "{'loss': 0.5, 'epoch': 1, 'extra': {'a': 1}}"],
    ["a list value", "{'loss': 0.5, 'epoch': 1, 'sizes': [1, 2]}"],
    ["a boolean value", "{'loss': 0.5, 'epoch': 1, 'done': True}"],
    ["None", "{'loss': None, 'epoch': 1}"],
    ["eval keys mixed with others", "{'eval_loss': 0.5, 'accuracy': 0.9}"],
    ["an empty dict", "{}"],
    ["text after the dict", "{'loss': 0.5, 'epoch': 1} and more"],
    ["an unterminated dict", "{'loss': 0.5, 'epoch': 1"],
    ["an unterminated string", "{'loss: 0.5, 'epoch': 1}"],
    ["an unquoted key", "{loss: 0.5, epoch: 1}"],
    ["a function call that is not a scalar", "{'loss': foo(bar), 'epoch': 1}"],
    ["code", "{'loss': __import__('os').system('x'), 'epoch': 1}"],
    ["a JSON line", '{"event":"progress","step":1}'],
    ["a log message", "INFO Saving model checkpoint to checkpoints/step-100"],
    ["a warning with a percent sign", "UserWarning: 50%| of things | 1/2 failed"],
    ["an empty line", ""],
  ])("returns null for %s", (_, line) => {
    expect(parseHfLine(line)).toBeNull();
  });
});

describe("parseHfLine: tqdm bars", () => {
  it("reads a training bar in it/s", () => {
    expect(parseHfLine(" 50%|█████     | 150/300 [01:23<01:23,  1.80it/s]")).toEqual({
      kind: "tqdm",
      label: "",
      percent: 50,
      step: 150,
      total: 300,
      elapsedSeconds: 83,
      remainingSeconds: 83,
      rate: 1.8,
      unit: "it",
    } satisfies TqdmBar);
  });

  it("reads s/it, hours, unknown remaining and postfixes, and takes the last redraw", () => {
    expect(
      parseHfLine(
        "\r  3%|▎         | 1/30 [00:01<?, ?it/s]\r  7%|▋         | 2/30 [1:02:03<10:00:00,  2.50s/it]",
      ),
    ).toMatchObject({
      step: 2,
      total: 30,
      elapsedSeconds: 3723,
      remainingSeconds: 36000,
      rate: 0.4,
    });
    expect(parseHfLine("  0%|          | 0/300 [00:00<?, ?it/s]")).toMatchObject({
      step: 0,
      remainingSeconds: null,
      rate: null,
    });
    expect(
      parseHfLine(" 10%|█         | 30/300 [00:10<01:30,  3.00it/s, loss=0.5, lr=1e-4]"),
    ).toMatchObject({
      step: 30,
      rate: 3,
    });
  });

  it("labels data-loading bars so they are not taken for training steps", () => {
    const map = parseHfLine("Map: 100%|██████████| 200/200 [00:00<00:00, 5421.36 examples/s]");
    expect(map).toMatchObject({ kind: "tqdm", label: "Map", step: 200, unit: "examples" });
    expect(isTrainingBar(map as TqdmBar)).toBe(false);
    const shards = parseHfLine(
      "Loading checkpoint shards: 100%|██████████| 2/2 [00:03<00:00,  1.52s/it]",
    );
    expect(shards).toMatchObject({ label: "Loading checkpoint shards", unit: "it" });
    expect(isTrainingBar(shards as TqdmBar)).toBe(false);
    const training = parseHfLine(" 20%|██        | 6/30 [00:07<00:30,  1.25s/it]");
    expect(isTrainingBar(training as TqdmBar)).toBe(true);
  });

  it("ignores ANSI cursor moves around a nested bar", () => {
    expect(parseHfLine(" 50%|█████     | 2/4 [00:00<00:00, 10.00it/s]\u001b[A")).toMatchObject({
      step: 2,
      total: 4,
    });
  });
});

describe("parseHfOutput", () => {
  it("returns the bar drawn just before a logs dict, then the dict", () => {
    const line =
      "\r 13%|█▎        | 4/30 [00:05<00:32,  1.25s/it]\r 17%|█▋        | 5/30 [00:06<00:31,  1.25s/it]" +
      `\r${" ".repeat(60)}\r{'loss': '2.811', 'learning_rate': '0.0001862', 'epoch': '0.5'}`;
    const parsed = parseHfOutput(line);
    expect(parsed.map((p) => p.kind)).toEqual(["tqdm", "train-log"]);
    expect(parsed[0]).toMatchObject({ step: 5 });
  });

  it("returns only the last bar of a line of redraws, and nothing for plain text", () => {
    expect(parseHfOutput("\r 1/2 junk\r 50%|█████     | 1/2 [00:01<00:01,  1.00it/s]\r")).toEqual([
      expect.objectContaining({ kind: "tqdm", step: 1 }),
    ]);
    expect(parseHfOutput("Saved adapter to /tmp/x")).toEqual([]);
    expect(parseHfOutput("{'eval_loss': 1.0, 'epoch': 1.0}")).toEqual([
      expect.objectContaining({ kind: "eval-log" }),
    ]);
  });

  it("skips the spaces tqdm leaves when it clears a bar, and keeps a bar before other text", () => {
    const bar = " 83%|████████▎ | 25/30 [00:31<00:06,  1.25s/it]";
    expect(parseHfOutput(`\r${bar}\r${" ".repeat(60)}\r`)).toEqual([
      expect.objectContaining({ step: 25 }),
    ]);
    expect(parseHfOutput(`\r${bar}\rUserWarning: something`)).toEqual([
      expect.objectContaining({ step: 25 }),
    ]);
    expect(parseHfOutput("\r   \r")).toEqual([]);
  });

  it("finds every logs dict and the training bar in a recorded Trainer log", () => {
    const text = readFileSync(join(__dirname, "../fixtures/logs/hf-trainer-tqdm.log"), "utf8");
    const parsed = text.split("\n").flatMap((line) => parseHfOutput(line));
    const kinds = parsed.filter((p) => p.kind !== "tqdm").map((p) => p.kind);
    expect(kinds).toEqual([
      "train-log",
      "train-log",
      "eval-log",
      "train-log",
      "train-log",
      "eval-log",
      "train-log",
      "train-log",
      "eval-log",
      "train-summary",
    ]);
    const steps = parsed
      .filter((p): p is TqdmBar => p.kind === "tqdm" && isTrainingBar(p) && p.total === 30)
      .map((p) => p.step);
    expect(steps).toContain(30);
    expect(steps.slice(0, 2)).toEqual([5, 10]);
  });
});

describe("parseHfLine: never a value the database cannot store", () => {
  const bar = (step: string, total: string, clock = "00:01<00:02", rate = "2.00it/s") =>
    ` 50%|█████     | ${step}/${total} [${clock}, ${rate}]`;

  it("takes steps up to int4 and refuses a bar counting past it", () => {
    expect(parseHfLine(bar("2147483647", "2147483647"))).toMatchObject({
      step: 2147483647,
      total: 2147483647,
    });
    for (const [step, total] of [
      ["2147483648", "10"],
      ["1", "2147483648"],
      ["9".repeat(400), "10"],
    ]) {
      expect(parseHfLine(bar(step!, total!))).toBeNull();
    }
  });

  it("refuses clocks and rates that are not finite", () => {
    expect(parseHfLine(bar("1", "10", `${"9".repeat(400)}:00<00:02`))).toBeNull();
    expect(parseHfLine(bar("1", "10", `00:01<${"9".repeat(400)}:00`))).toBeNull();
    expect(parseHfLine(bar("1", "10", "00:01<00:02", `${"9".repeat(400)}it/s`))).toMatchObject({
      rate: null,
    });
  });
});
