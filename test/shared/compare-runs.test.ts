import { describe, expect, it } from "vitest";
import {
  finalFigures,
  metricsCsv,
  overlay,
  type RunToCompare,
  settingsTable,
} from "../../src/shared/compare-runs";

const at = (seconds: number) => new Date(Date.UTC(2026, 11, 1, 0, 0, seconds));

function run(id: string, over: Partial<RunToCompare> = {}): RunToCompare {
  return {
    id,
    name: `run ${id}`,
    status: "completed",
    model: "builtin:tiny",
    trainer: "builtin",
    hyperparameters: { learningRate: 0.0002, epochs: 3 },
    limits: {},
    metrics: [],
    ...over,
  };
}

describe("comparing runs", () => {
  it("lists every setting, the differing ones first, a missing one as empty", () => {
    const rows = settingsTable([
      run("a", { limits: { memoryMb: 512 } }),
      run("b", { hyperparameters: { learningRate: 0.0001, epochs: 3 } }),
    ]);
    expect(rows).toEqual([
      { setting: "learningRate", values: ["0.0002", "0.0001"], differs: true },
      { setting: "limits.memoryMb", values: ["512", ""], differs: true },
      { setting: "model", values: ["builtin:tiny", "builtin:tiny"], differs: false },
      { setting: "trainer", values: ["builtin", "builtin"], differs: false },
      { setting: "epochs", values: ["3", "3"], differs: false },
    ]);
  });

  it("takes each step's latest attempt for the final figures, and the best eval loss", () => {
    const figures = finalFigures(
      run("a", {
        metrics: [
          { attempt: 1, step: 1, loss: 2, evalLoss: null, at: at(0) },
          { attempt: 1, step: 2, loss: 1.5, evalLoss: null, at: at(10) },
          { attempt: 1, step: 2, loss: null, evalLoss: 1.2, at: at(11) },
          // Resumed from step 1: step 2 again, then further.
          { attempt: 2, step: 2, loss: 1.4, evalLoss: null, at: at(60) },
          { attempt: 2, step: 3, loss: 1.1, evalLoss: null, at: at(70) },
          { attempt: 2, step: 3, loss: null, evalLoss: 1.3, at: at(71) },
        ],
      }),
    );
    expect(figures).toEqual({
      id: "a",
      name: "run a",
      status: "completed",
      steps: 3,
      finalLoss: 1.1,
      finalEvalLoss: 1.3,
      bestEvalLoss: 1.3,
      seconds: 71,
    });
    expect(finalFigures(run("empty"))).toMatchObject({
      steps: null,
      finalLoss: null,
      bestEvalLoss: null,
      seconds: null,
    });
  });

  it("overlays losses by step, or by minutes since each run's start", () => {
    const a = run("a", {
      metrics: [
        { attempt: 1, step: 1, loss: 2, evalLoss: null, at: at(0) },
        { attempt: 1, step: 2, loss: 1, evalLoss: 1.5, at: at(30) },
      ],
    });
    const b = run("b", {
      metrics: [{ attempt: 1, step: 2, loss: 3, evalLoss: null, at: at(600) }],
    });
    expect(overlay([a, b], "step")).toEqual([
      { x: 1, "a:loss": 2 },
      { x: 2, "a:loss": 1, "a:eval": 1.5, "b:loss": 3 },
    ]);
    expect(overlay([a, b], "time")).toEqual([
      { x: 0, "a:loss": 2, "b:loss": 3 },
      { x: 0.5, "a:loss": 1, "a:eval": 1.5 },
    ]);
  });

  it("writes every metric as CSV, quoting what needs it", () => {
    const csv = metricsCsv([
      run("a", {
        name: 'lr "high", v2',
        metrics: [{ attempt: 1, step: 1, loss: 2, evalLoss: null, at: at(0) }],
      }),
    ]);
    expect(csv).toBe(
      'task_id,task_name,attempt,step,loss,eval_loss,at\r\na,"lr ""high"", v2",1,1,2,,2026-12-01T00:00:00.000Z\r\n',
    );
  });
});
