"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { useTranslation } from "react-i18next";
import { useTRPC } from "../trpc/context";
import type { TaskDetails } from "../trpc/types";
import { DatasetSelect } from "./DatasetSelect";
import { EvaluationSetScores } from "./EvaluationSetScores";
import { evaluationFigure } from "./evaluation-figure";
import { ModelRunForm } from "./ModelRunForm";
import { chosenWeights } from "./model-choice";
import { ACTIVE_STATUSES } from "./task-statuses";

const REFRESH_MS = 1000;
const MODELS_REFRESH_MS = 5000;

/**
 * Evaluations of the task's adapter (or a checkpoint) on a stored dataset, each run by a process
 * of its own: started here, followed while running, then shown in a table with a few answers;
 * and the task's evaluation set with every checkpoint's score on it (EvaluationSetScores).
 */
export function Evaluations({ task }: { task: TaskDetails["task"] }) {
  const { t } = useTranslation();
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  // A custom command's model cannot be loaded by the studio.
  const loadable = task.trainer !== "command";
  // Checkpoints can come while a trainer runs (or is paused, or starting).
  const training = ACTIVE_STATUSES.includes(task.status);
  // Checkpoints come while the task trains: the choices (and the scores to wait for) follow.
  const models = useQuery({
    ...trpc.task.models.queryOptions({ id: task.id }, { enabled: loadable }),
    refetchInterval: training ? MODELS_REFRESH_MS : false,
  });
  const datasets = useQuery(trpc.dataset.list.queryOptions(undefined, { enabled: loadable }));
  const set = task.evaluationSet;
  const evaluations = useQuery({
    ...trpc.task.evaluations.queryOptions({ id: task.id }, { enabled: loadable }),
    refetchInterval: (query) => {
      const all = query.state.data ?? [];
      if (all.some((e) => e.state === "running" || e.state === "queued")) return REFRESH_MS;
      // With a set, scores are still to come while the task trains or a checkpoint has none.
      if (!set) return false;
      const scored = all.filter((e) => e.origin === "standing" && e.dataset.id === set.datasetId);
      const waiting = scored.length < (models.data?.checkpoints.length ?? 0);
      return waiting || training ? REFRESH_MS : false;
    },
  });
  const start = useMutation(
    trpc.task.evaluate.mutationOptions({
      onSuccess: () => queryClient.invalidateQueries(trpc.task.evaluations.pathFilter()),
    }),
  );
  const [dataset, setDataset] = useState("");
  const [checkpoint, setCheckpoint] = useState("");
  if (!loadable) return null;
  const choices = models.data;
  const chosen = choices ? chosenWeights(choices, checkpoint) : null;
  const chosenDataset = dataset || datasets.data?.[0]?.id || "";
  const requested = evaluations.data?.filter((e) => e.origin === "request") ?? [];

  return (
    <section aria-labelledby="evaluations-title" data-testid="evaluations">
      <h3 id="evaluations-title">{t("evaluation.title")}</h3>
      <EvaluationSetScores
        task={task}
        evaluations={evaluations.data ?? []}
        datasets={datasets.data ?? []}
      />
      {choices && chosen !== null && (
        <ModelRunForm
          name="evaluation"
          choices={choices}
          weights={chosen}
          onWeights={setCheckpoint}
          settings={[
            {
              label: t("evaluation.dataset"),
              control: (
                <DatasetSelect
                  testId="evaluation-dataset"
                  datasets={datasets.data ?? []}
                  value={chosenDataset}
                  onChange={setDataset}
                />
              ),
            },
          ]}
          run={{
            label: t("evaluation.start"),
            testId: "evaluation-start",
            disabled: start.isPending || !chosenDataset,
            onClick: () =>
              start.mutate({ id: task.id, dataset: chosenDataset, checkpoint: chosen || null }),
          }}
          error={start.error}
        />
      )}
      {requested.length > 0 && (
        <table className="evaluations" data-testid="evaluation-table">
          <thead>
            <tr>
              <th>{t("evaluation.weights")}</th>
              <th>{t("evaluation.dataset")}</th>
              <th>{t("evaluation.loss")}</th>
              <th>{t("evaluation.perplexity")}</th>
              <th>{t("evaluation.exactMatch")}</th>
              <th>{t("evaluation.state")}</th>
            </tr>
          </thead>
          <tbody>
            {requested.map((e) => (
              <tr key={e.id} data-testid="evaluation-row" data-state={e.state}>
                <td className="mono">
                  {e.source.path === "." ? t("playground.final") : e.source.path}
                </td>
                <td>{e.dataset.name}</td>
                {e.state === "done" ? (
                  <>
                    <td data-testid="evaluation-loss">
                      {evaluationFigure(e.results.loss)}{" "}
                      <span className="muted">
                        ({t("evaluation.base")} {evaluationFigure(e.results.baseLoss)})
                      </span>
                    </td>
                    <td>
                      {evaluationFigure(e.results.perplexity)}{" "}
                      <span className="muted">
                        ({t("evaluation.base")} {evaluationFigure(e.results.basePerplexity)})
                      </span>
                    </td>
                    <td>
                      {e.results.exactMatch
                        ? `${e.results.exactMatch.matched}/${e.results.exactMatch.total}`
                        : "–"}
                    </td>
                    <td>{t("evaluation.done")}</td>
                  </>
                ) : (
                  <td colSpan={4} className={e.state === "failed" ? "error-text" : "muted"}>
                    {e.state === "failed" ? e.reason : t("evaluation.running")}
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {requested
        .filter((e) => e.state === "done")
        .slice(0, 1)
        .flatMap((e) =>
          e.state === "done"
            ? e.results.samples.map((s, i) => ({ ...s, key: `${e.id}-${i}` }))
            : [],
        )
        .map((s, i) => (
          <details key={s.key} className="evaluation-sample">
            <summary>{t("evaluation.sample", { n: i + 1 })}</summary>
            <dl className="facts compact">
              <dt>{t("playground.prompt")}</dt>
              <dd className="mono">{s.prompt}</dd>
              <dt>{t("evaluation.expected")}</dt>
              <dd className="mono">{s.expected}</dd>
              <dt>{t("evaluation.generated")}</dt>
              <dd className="mono">{s.generated}</dd>
            </dl>
          </details>
        ))}
    </section>
  );
}
