// The pure parts of the live Finetune page; the page itself is driven by live.spec.ts.
import { describe, expect, it } from "vitest";
import { liveState } from "../../src/components/live-state";
import { displayText, prependLogLines } from "../../src/components/log-lines";
import { chartVersion, lossSeries } from "../../src/components/loss-series";
import { progressView } from "../../src/components/progress-view";
import { formatDuration } from "../../src/shared/format-duration";

describe("live state", () => {
  const error = new Error("the connection dropped");

  it("reads every status of a stream, with and without an error", () => {
    const cases = [
      ["connecting", null, "connecting"],
      // the link reports a dropped connection as connecting, with the error, while it reconnects
      ["connecting", error, "reconnecting"],
      ["pending", null, "live"],
      ["error", error, "reconnecting"],
      ["idle", null, "disconnected"],
    ] as const;
    for (const [status, cause, expected] of cases) {
      expect(liveState({ status, error: cause })).toBe(expected);
    }
  });
});

describe("log lines", () => {
  it("shows what a terminal shows of a tqdm redraw", () => {
    expect(displayText(" 10%|#  | 1/10\r 20%|## | 2/10\r")).toBe(" 20%|## | 2/10");
    expect(displayText("a\rb\rc")).toBe("c");
    expect(displayText("plain")).toBe("plain");
    expect(displayText("")).toBe("");
  });

  it("prepends an older page without repeating lines it overlaps", () => {
    const current = [{ offset: 30 }, { offset: 40 }];
    expect(prependLogLines([{ offset: 10 }, { offset: 20 }, { offset: 30 }], current)).toEqual([
      { offset: 10 },
      { offset: 20 },
      { offset: 30 },
      { offset: 40 },
    ]);
    expect(prependLogLines([{ offset: 1 }], [])).toEqual([{ offset: 1 }]);
  });
});

describe("progress view", () => {
  const state = {
    epoch: 1,
    totalEpochs: 3,
    step: 50,
    totalSteps: 150,
    loss: 0.5,
    evalLoss: null,
    learningRate: 0.0002,
    startedAt: 1_000,
    updatedAt: 61_000,
    etaSeconds: 120.4,
  };

  it("counts elapsed time to now while running, to the last update otherwise", () => {
    expect(progressView(state, true, 91_000)).toMatchObject({
      elapsedSeconds: 90,
      etaSeconds: 120,
      step: 50,
      totalSteps: 150,
    });
    expect(progressView(state, false, 91_000)).toMatchObject({
      elapsedSeconds: 60,
      etaSeconds: null,
    });
  });

  it("reads missing or malformed progress as unknown", () => {
    expect(progressView(null, true, 0).step).toBeNull();
    expect(progressView({ step: "x" }, true, 0).step).toBeNull();
    expect(progressView({}, true, 0).elapsedSeconds).toBeNull();
  });

  it("formats durations", () => {
    expect(formatDuration(59)).toBe("59s");
    expect(formatDuration(61)).toBe("1m 01s");
    expect(formatDuration(3700)).toBe("1h 01m");
  });
});

describe("loss series", () => {
  it("merges rows by step in step order, the later value of a retraced step winning", () => {
    expect(
      lossSeries([
        { step: 20, loss: 0.8, evalLoss: null },
        { step: 10, loss: 1, evalLoss: null },
        { step: 20, loss: null, evalLoss: 0.9 },
        { step: 20, loss: 0.7, evalLoss: null },
        { step: 30, loss: null, evalLoss: null },
      ]),
    ).toEqual([
      { step: 10, loss: 1 },
      { step: 20, loss: 0.7, evalLoss: 0.9 },
    ]);
  });
});

describe("chart version", () => {
  // progress moves without the task's updatedAt (which follows the status): the chart must see it
  it("changes with the step and each progress update, not only with the task's updatedAt", () => {
    const updatedAt = new Date(1_000);
    const at5 = chartVersion({ updatedAt, progress: { step: 5, updatedAt: 2_000 } });
    const at20 = chartVersion({ updatedAt, progress: { step: 20, updatedAt: 3_000 } });
    const evalAt20 = chartVersion({ updatedAt, progress: { step: 20, updatedAt: 3_500 } });
    expect(new Set([at5, at20, evalAt20]).size).toBe(3);
    expect(
      chartVersion({ updatedAt: new Date(9_000), progress: { step: 5, updatedAt: 2_000 } }),
    ).not.toBe(at5);
    expect(chartVersion({ updatedAt, progress: {} })).toBe("1000::");
    expect(chartVersion({ updatedAt: "1970-01-01T00:00:01.000Z", progress: null })).toBe("1000::");
  });
});
