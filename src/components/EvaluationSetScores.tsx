"use client";

import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { useTranslation } from "react-i18next";
import { useTRPC } from "../trpc/context";
import type { RouterOutputs, TaskDetails } from "../trpc/types";
import { DatasetSelect } from "./DatasetSelect";
import { ErrorNote } from "./ErrorNote";
import { evaluationFigure } from "./evaluation-figure";

type Evaluation = RouterOutputs["task"]["evaluations"][number];
type Dataset = RouterOutputs["dataset"]["list"][number];

/**
 * The task's evaluation set: held-out data every checkpoint is scored on, once, by the studio
 * (attached or detached here), and those scores by step: the loss of each checkpoint beside its
 * base's, so the curve of held-out loss over the run reads down the table.
 */
export function EvaluationSetScores({
  task,
  evaluations,
  datasets,
}: {
  task: TaskDetails["task"];
  evaluations: Evaluation[];
  datasets: Dataset[];
}) {
  const { t } = useTranslation();
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const change = useMutation(
    trpc.task.setEvaluationSet.mutationOptions({
      onSuccess: () =>
        Promise.all([
          queryClient.invalidateQueries(trpc.task.get.pathFilter()),
          queryClient.invalidateQueries(trpc.task.evaluations.pathFilter()),
        ]),
    }),
  );
  const [dataset, setDataset] = useState("");
  const set = task.evaluationSet;
  const chosen = dataset || datasets[0]?.id || "";
  const scores = evaluations
    .filter((e) => e.origin === "standing")
    .sort((a, b) => (a.source.step ?? 0) - (b.source.step ?? 0));
  const lowest = Math.min(
    ...scores.flatMap((e) =>
      e.state === "done" && e.results.loss !== null ? [e.results.loss] : [],
    ),
  );

  return (
    <div data-testid="evaluation-set">
      <h4>{t("evaluationSet.title")}</h4>
      {set ? (
        <p className="inline-fields">
          <span data-testid="evaluation-set-name">
            {t("evaluationSet.attached", { name: set.name, format: set.format })}
          </span>{" "}
          <button
            type="button"
            className="secondary"
            data-testid="evaluation-set-detach"
            disabled={change.isPending}
            onClick={() => change.mutate({ id: task.id, dataset: null })}
          >
            {t("evaluationSet.detach")}
          </button>
        </p>
      ) : (
        <div className="inline-fields">
          {/* biome-ignore lint/a11y/noLabelWithoutControl: DatasetSelect renders its select inside the label */}
          <label>
            {t("evaluation.dataset")}{" "}
            <DatasetSelect
              testId="evaluation-set-dataset"
              datasets={datasets}
              value={chosen}
              onChange={setDataset}
            />
          </label>
          <button
            type="button"
            className="secondary"
            data-testid="evaluation-set-attach"
            disabled={change.isPending || !chosen}
            onClick={() => change.mutate({ id: task.id, dataset: chosen })}
          >
            {t("evaluationSet.attach")}
          </button>
          <span className="muted">{t("evaluationSet.explain")}</span>
        </div>
      )}
      {change.error && <ErrorNote error={change.error} />}
      {scores.length > 0 && (
        <table className="evaluations" data-testid="evaluation-scores">
          <thead>
            <tr>
              <th>{t("evaluationSet.step")}</th>
              <th>{t("evaluation.dataset")}</th>
              <th>{t("evaluation.loss")}</th>
              <th>{t("evaluation.perplexity")}</th>
              <th>{t("evaluation.exactMatch")}</th>
            </tr>
          </thead>
          <tbody>
            {scores.map((e) => (
              <tr
                key={e.id}
                data-testid="evaluation-score"
                data-state={e.state}
                data-step={e.source.step ?? ""}
              >
                <td className="mono">{e.source.step ?? e.source.path}</td>
                <td>{e.dataset.name}</td>
                {e.state === "done" ? (
                  <>
                    <td data-testid="evaluation-score-loss">
                      {e.results.loss === lowest ? (
                        <strong>{evaluationFigure(e.results.loss)}</strong>
                      ) : (
                        evaluationFigure(e.results.loss)
                      )}{" "}
                      <span className="muted">
                        ({t("evaluation.base")} {evaluationFigure(e.results.baseLoss)})
                      </span>
                    </td>
                    <td>{evaluationFigure(e.results.perplexity)}</td>
                    <td>
                      {e.results.exactMatch
                        ? `${e.results.exactMatch.matched}/${e.results.exactMatch.total}`
                        : "–"}
                    </td>
                  </>
                ) : (
                  <td colSpan={3} className={e.state === "failed" ? "error-text" : "muted"}>
                    {e.state === "failed"
                      ? e.reason
                      : e.state === "queued"
                        ? t("evaluationSet.queued")
                        : t("evaluation.running")}
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
