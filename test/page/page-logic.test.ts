import { createInstance } from "i18next";
import { beforeAll, describe, expect, it } from "vitest";
import { conditionBanners } from "../../src/components/condition-banners";
import { appendLogLines } from "../../src/components/log-lines";
import { chosenWeights } from "../../src/components/model-choice";
import { progressPercent } from "../../src/components/progress-percent";
import {
  defaultFormValues,
  fieldOfPath,
  groupIssues,
  toCreateInput,
  validateForm,
  withTrainer,
} from "../../src/components/task-form";
import { pickLanguage } from "../../src/i18n/language";
import { resources } from "../../src/i18n/resources";
import { validationMessage } from "../../src/i18n/validation-message";
import { tellingReason } from "../../src/shared/status-reason";

// The browser-side logic of the Finetune page; the page itself is driven by finetune.spec.ts.

describe("create form", () => {
  it("starts from the schema's defaults and needs only a name and a dataset", () => {
    const values = { ...defaultFormValues(), name: "demo", dataset: "sample" };
    const checked = validateForm(values);
    expect(checked.ok).toBe(true);
    if (!checked.ok) return;
    expect(checked.input).toMatchObject({
      name: "demo",
      model: "builtin:tiny",
      dataset: "sample",
      trainer: "builtin",
      mode: "lora",
      gpus: 0,
      hyperparameters: {
        epochs: 3,
        learningRate: 0.002,
        batchSize: 8,
        loraRank: 8,
        loraAlpha: 16,
      },
    });
  });

  it("puts each problem on its own field", () => {
    const checked = validateForm({
      ...defaultFormValues(),
      name: "  ",
      dataset: "",
      epochs: "0",
      learningRate: "0",
      batchSize: "",
      loraRank: "2.5",
      model: "has space",
    });
    expect(checked.ok).toBe(false);
    if (checked.ok) return;
    expect(Object.keys(checked.fields).sort()).toEqual(
      ["batchSize", "dataset", "epochs", "learningRate", "loraRank", "model", "name"].sort(),
    );
    expect(checked.other).toEqual([]);
  });

  it("reads an empty number box as missing, not as zero", () => {
    expect(toCreateInput({ ...defaultFormValues(), epochs: " " }).hyperparameters.epochs).toBeNaN();
    expect(toCreateInput({ ...defaultFormValues(), epochs: "2" }).hyperparameters.epochs).toBe(2);
  });

  it("sends a command only for the command trainer, one argument per line", () => {
    const lines = "python\ntrain.py\n\n--fast";
    expect(toCreateInput({ ...defaultFormValues(), command: lines }).command).toBeUndefined();
    expect(
      toCreateInput({ ...defaultFormValues(), trainer: "command", command: lines }).command,
    ).toEqual(["python", "train.py", "--fast"]);
    const missing = validateForm({
      ...defaultFormValues(),
      name: "x",
      dataset: "sample",
      trainer: "command",
    });
    expect(missing.ok || Object.keys(missing.fields)).toEqual(["command"]);
  });

  it("moves a learning rate left at the default along with the trainer, keeps a typed one", () => {
    const builtin = defaultFormValues();
    const hf = withTrainer(builtin, "hf-peft");
    expect([hf.trainer, hf.learningRate]).toEqual(["hf-peft", "0.0002"]);
    expect(withTrainer(hf, "builtin").learningRate).toBe(builtin.learningRate);
    expect(withTrainer({ ...builtin, learningRate: "0.01" }, "hf-peft").learningRate).toBe("0.01");
  });

  it("maps issue paths to fields and keeps the first issue of a field", () => {
    expect(fieldOfPath(["hyperparameters", "loraAlpha"])).toBe("loraAlpha");
    expect(fieldOfPath(["hyperparameters", "seed"])).toBeNull();
    expect(fieldOfPath(["gpus"])).toBe("gpus");
    expect(fieldOfPath([])).toBeNull();
    const grouped = groupIssues([
      { code: "a", path: ["name"], message: "first" },
      { code: "b", path: ["name"], message: "second" },
      { code: "c", path: [], message: "whole form" },
    ]);
    expect(grouped.fields.name?.message).toBe("first");
    expect(grouped.other.map((i) => i.message)).toEqual(["whole form"]);
  });
});

describe("validation messages", () => {
  const i18n = createInstance();
  beforeAll(async () => {
    await i18n.init({ resources, lng: "en", fallbackLng: "en" });
  });

  function messagesFor(language: string, values: Partial<ReturnType<typeof defaultFormValues>>) {
    const checked = validateForm({ ...defaultFormValues(), name: "x", dataset: "d", ...values });
    if (checked.ok) throw new Error("expected issues");
    const t = i18n.getFixedT(language);
    return Object.fromEntries(
      Object.entries(checked.fields).map(([field, issue]) => [field, validationMessage(t, issue)]),
    );
  }

  it("words the schema's issues in English", () => {
    expect(
      messagesFor("en", {
        name: "",
        epochs: "0",
        learningRate: "0",
        batchSize: "x",
        loraRank: "1.5",
        model: "a b",
      }),
    ).toEqual({
      name: "Required",
      epochs: "Must be at least 1",
      learningRate: "Must be greater than 0",
      batchSize: "Enter a number",
      loraRank: "Enter a whole number",
      model: "Letters, digits and _ . / : @ - only",
    });
    expect(messagesFor("en", { epochs: "5000", gpus: "1" })).toEqual({
      epochs: "Must be at most 1000",
      gpus: "The built-in trainer runs on the CPU: ask for 0 GPUs",
    });
  });

  it("words them in Simplified Chinese", () => {
    expect(messagesFor("zh-CN", { name: "", learningRate: "2" })).toEqual({
      name: "必填",
      learningRate: "不能大于 1",
    });
  });
});

describe("progress and language", () => {
  it("computes whole percent of steps, 100 when completed, nothing when unknown", () => {
    expect(progressPercent({ step: 150, totalSteps: 300 }, "training")).toBe(50);
    expect(progressPercent({ step: 2, total_steps: 3 }, "training")).toBe(66);
    expect(progressPercent({ step: 400, totalSteps: 300 }, "training")).toBe(100);
    expect(progressPercent({}, "pending")).toBeNull();
    expect(progressPercent({ step: 1, totalSteps: 0 }, "training")).toBeNull();
    expect(progressPercent({}, "completed")).toBe(100);
    expect(progressPercent({ percent: 42.7, step: 1, totalSteps: 2 }, "training")).toBe(42);
  });

  it("keeps the newest log lines up to the cap", () => {
    const at = (...offsets: number[]) => offsets.map((offset) => ({ offset }));
    expect(appendLogLines(at(1, 2), at(3), 5)).toEqual(at(1, 2, 3));
    expect(appendLogLines(at(1, 2, 3), at(4, 5, 6), 4)).toEqual(at(3, 4, 5, 6));
    expect(appendLogLines([], at(1, 2, 3), 2)).toEqual(at(2, 3));
  });

  it("starts the log view over when the file restarted (offsets went back)", () => {
    const at = (...offsets: number[]) => offsets.map((offset) => ({ offset }));
    expect(appendLogLines(at(0, 10, 20), at(0, 5))).toEqual(at(0, 5));
  });

  it("keeps a stored language only if the studio speaks it", () => {
    expect(pickLanguage("zh-CN")).toBe("zh-CN");
    expect(pickLanguage("fr")).toBe("en");
    expect(pickLanguage(null)).toBe("en");
  });

  it("has the same keys in every language", () => {
    const keys = (o: object, prefix = ""): string[] =>
      Object.entries(o).flatMap(([k, v]) =>
        typeof v === "object" ? keys(v, `${prefix}${k}.`) : [`${prefix}${k}`],
      );
    expect(keys(resources["zh-CN"].translation)).toEqual(keys(resources.en.translation));
  });
});

describe("condition banners", () => {
  const MiB = 1024 * 1024;
  const disk = (freeMb: number, verdict: "ok" | "low" | "full") => ({
    path: "/home/u/.finetune-studio",
    freeBytes: freeMb * MiB,
    floorBytes: 100 * MiB,
    verdict,
  });
  const since = new Date("2026-01-02T03:04:05Z");

  it("shows nothing while the database works and the disk has room", () => {
    expect(conditionBanners({ database: { status: "ok" }, disk: disk(900, "ok") })).toEqual([]);
    expect(conditionBanners({ database: { status: "ok" }, disk: null })).toEqual([]);
  });

  it("says since when the database fails, unreachable or unable to write", () => {
    const failing = (kind: "unreachable" | "disk-full") =>
      conditionBanners({
        database: { status: "failing", kind, message: "connection refused", since },
        disk: disk(900, "ok"),
      });
    expect(failing("unreachable")).toEqual([
      {
        id: "database",
        tone: "error",
        key: "condition.databaseDown",
        values: { since },
        detail: "connection refused",
      },
    ]);
    expect(failing("disk-full")[0]?.key).toBe("condition.databaseDiskFull");
  });

  it("warns before the floor and says when it is reached, with the figures", () => {
    const [low] = conditionBanners({ database: { status: "ok" }, disk: disk(150.7, "low") });
    expect(low).toEqual({
      id: "disk",
      tone: "warning",
      key: "condition.diskLow",
      values: { free: 150, path: "/home/u/.finetune-studio", floor: 100 },
    });
    const [full] = conditionBanners({ database: { status: "ok" }, disk: disk(3, "full") });
    expect(full).toMatchObject({ tone: "error", key: "condition.diskFull", values: { free: 3 } });
  });
});

describe("status reasons", () => {
  it("leaves out a reason that only repeats the status", () => {
    expect(tellingReason("completed", "finished")).toBeNull();
    expect(tellingReason("cancelled", "cancelled")).toBeNull();
    expect(tellingReason("cancelled", "Cancelled ")).toBeNull();
    expect(tellingReason("failed", null)).toBeNull();
    expect(tellingReason("cancelled", "cancelled before it started")).toBe(
      "cancelled before it started",
    );
    expect(tellingReason("failed", "trainer exited with code 1")).toBe(
      "trainer exited with code 1",
    );
    expect(tellingReason("failed", "finished")).toBe("finished");
  });
});

describe("the weights a playground or evaluation runs", () => {
  it("takes the pick, else the final adapter, else the newest checkpoint; nothing without either", () => {
    const both = { final: true, checkpoints: ["step-2", "step-4"] };
    const checkpointsOnly = { final: false, checkpoints: ["step-2", "step-4"] };
    const finalOnly = { final: true, checkpoints: [] };
    const neither = { final: false, checkpoints: [] };
    expect(chosenWeights(both, "")).toBe("");
    expect(chosenWeights(both, "step-2")).toBe("step-2");
    expect(chosenWeights(checkpointsOnly, "")).toBe("step-4");
    expect(chosenWeights(checkpointsOnly, "step-2")).toBe("step-2");
    expect(chosenWeights(finalOnly, "")).toBe("");
    expect(chosenWeights(neither, "")).toBeNull();
    expect(chosenWeights(neither, "step-2")).toBeNull();
  });
});
