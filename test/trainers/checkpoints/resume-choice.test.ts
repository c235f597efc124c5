import { describe, expect, it } from "vitest";
import {
  checkpointStep,
  displayPath,
  fallbackMessage,
  noCheckpointMessage,
  resumeCandidates,
} from "../../../src/trainers/checkpoints/resume-choice";

describe("checkpointStep", () => {
  it.each([
    ["step-0", 0],
    ["step-7", 7],
    ["step-2147483647", 2147483647],
    ["step-2147483648", null],
    ["step-07", null],
    ["step-", null],
    ["step-1a", null],
    ["step--1", null],
    ["checkpoint-5", null],
    [".tmp-step-5-123", null],
    ["step-99999999999", null],
  ])("%s → %s", (name, step) => {
    expect(checkpointStep(name, "step-")).toBe(step);
  });
});

describe("resumeCandidates", () => {
  const siblings = [
    "step-5",
    "step-20",
    "step-10",
    "step-15",
    "notes",
    ".tmp-step-25-1",
    "step-25",
  ];

  it("tries the one asked for, then the earlier ones newest first, never a later one", () => {
    expect(resumeCandidates("/t/checkpoints/step-20", siblings, "step-")).toEqual([
      "/t/checkpoints/step-20",
      "/t/checkpoints/step-15",
      "/t/checkpoints/step-10",
      "/t/checkpoints/step-5",
    ]);
  });

  it("tries the one asked for even when it is not listed (gone), then the earlier ones", () => {
    expect(resumeCandidates("/t/checkpoints/step-12", siblings, "step-")).toEqual([
      "/t/checkpoints/step-12",
      "/t/checkpoints/step-10",
      "/t/checkpoints/step-5",
    ]);
  });

  it("tries a path not named like a checkpoint alone", () => {
    expect(resumeCandidates("/elsewhere/best", siblings, "step-")).toEqual(["/elsewhere/best"]);
    expect(resumeCandidates("/t/checkpoints/checkpoint-20", siblings, "step-")).toEqual([
      "/t/checkpoints/checkpoint-20",
    ]);
  });
});

describe("messages", () => {
  const rejected = [
    { path: "/t/checkpoints/step-20", reason: "adapter_model.safetensors is missing" },
    { path: "/other/step-15", reason: "does not load (bad header)" },
  ];

  it("name each checkpoint passed over, relative to the task folder when inside it", () => {
    expect(displayPath("/t/checkpoints/step-5", "/t")).toBe("checkpoints/step-5");
    expect(displayPath("/t/checkpoints/step-5", "/t/")).toBe("checkpoints/step-5");
    expect(displayPath("/tt/checkpoints/step-5", "/t")).toBe("/tt/checkpoints/step-5");
    expect(fallbackMessage("/t/checkpoints/step-10", rejected, "/t")).toBe(
      "resuming from checkpoints/step-10 instead: checkpoints/step-20: adapter_model.safetensors is missing; /other/step-15: does not load (bad header)",
    );
    expect(fallbackMessage("/t/checkpoints/step-10", [], "/t")).toBeNull();
    expect(noCheckpointMessage(rejected, "/t")).toBe(
      "no checkpoint to resume from verifies (checkpoints/step-20: adapter_model.safetensors is missing; /other/step-15: does not load (bad header))",
    );
  });
});
