"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { useTranslation } from "react-i18next";
import { useTRPC } from "../trpc/context";
import type { TaskDetails } from "../trpc/types";
import { ErrorNote } from "./ErrorNote";

const REFRESH_MS = 1000;

const figure = (value: number | null) => (value === null ? "–" : value.toFixed(3));

/**
 * Evaluations of the task's adapter (or a checkpoint) on a stored dataset, each run by a process
 * of its own: started here, followed while running, then shown in a table with a few answers.
 */
export function Evaluations({ task }: { task: TaskDetails["task"] }) {
  const { t } = useTranslation();
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  // A custom command's model cannot be loaded by the studio.
  const loadable = task.trainer !== "command";
  const models = useQuery(trpc.task.models.queryOptions({ id: task.id }, { enabled: loadable }));
  const datasets = useQuery(trpc.dataset.list.queryOptions(undefined, { enabled: loadable }));
  const evaluations = useQuery({
    ...trpc.task.evaluations.queryOptions({ id: task.id }, { enabled: loadable }),
    refetchInterval: (query) =>
      query.state.data?.some((e) => e.state === "running") ? REFRESH_MS : false,
  });
  const start = useMutation(
    trpc.task.evaluate.mutationOptions({
      onSuccess: () => queryClient.invalidateQueries(trpc.task.evaluations.pathFilter()),
    }),
  );
  const [dataset, setDataset] = useState("");
  const [checkpoint, setCheckpoint] = useState("");
  const choices = models.data;
  if (!loadable || !choices || (!choices.final && choices.checkpoints.length === 0)) return null;
  const chosen = checkpoint || (choices.final ? "" : choices.checkpoints.at(-1)!);
  const chosenDataset = dataset || datasets.data?.[0]?.id || "";

  return (
    <section aria-labelledby="evaluations-title" data-testid="evaluations">
      <h3 id="evaluations-title">{t("evaluation.title")}</h3>
      <div className="inline-fields">
        <label>
          {t("evaluation.dataset")}{" "}
          <select
            data-testid="evaluation-dataset"
            value={chosenDataset}
            onChange={(e) => setDataset(e.target.value)}
          >
            {datasets.data?.map((d) => (
              <option key={d.id} value={d.id}>
                {t("datasets.option", { name: d.name, rows: d.rowCount, format: d.format })}
              </option>
            ))}
          </select>
        </label>
        <label>
          {t("playground.weights")}{" "}
          <select
            data-testid="evaluation-checkpoint"
            value={chosen}
            onChange={(e) => setCheckpoint(e.target.value)}
          >
            {choices.final && <option value="">{t("playground.final")}</option>}
            {choices.checkpoints.map((name) => (
              <option key={name} value={name}>
                {name}
              </option>
            ))}
          </select>
        </label>
        <button
          type="button"
          className="secondary"
          data-testid="evaluation-start"
          disabled={start.isPending || !chosenDataset}
          onClick={() =>
            start.mutate({ id: task.id, dataset: chosenDataset, checkpoint: chosen || null })
          }
        >
          {t("evaluation.start")}
        </button>
      </div>
      {start.error && <ErrorNote error={start.error} />}
      {evaluations.data && evaluations.data.length > 0 && (
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
            {evaluations.data.map((e) => (
              <tr key={e.id} data-testid="evaluation-row" data-state={e.state}>
                <td className="mono">
                  {e.source.path === "." ? t("playground.final") : e.source.path}
                </td>
                <td>{e.dataset.name}</td>
                {e.state === "done" ? (
                  <>
                    <td data-testid="evaluation-loss">
                      {figure(e.results.loss)}{" "}
                      <span className="muted">
                        ({t("evaluation.base")} {figure(e.results.baseLoss)})
                      </span>
                    </td>
                    <td>
                      {figure(e.results.perplexity)}{" "}
                      <span className="muted">
                        ({t("evaluation.base")} {figure(e.results.basePerplexity)})
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
      {evaluations.data
        ?.filter((e) => e.state === "done")
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
