"use client";

import { useQueries, useQuery } from "@tanstack/react-query";
import { usePathname, useRouter, useSearchParams } from "next/navigation";
import { useMemo, useState } from "react";
import { useTranslation } from "react-i18next";
import { Line } from "recharts";
import {
  finalFigures,
  metricsCsv,
  overlay,
  type RunToCompare,
  settingsTable,
} from "../shared/compare-runs";
import { useTRPC } from "../trpc/context";
import { ChartFrame } from "./ChartFrame";

/** At most this many runs side by side: beyond it the chart and tables stop being readable. */
const MAX_RUNS = 8;
const COLORS = [
  "#1f45c2",
  "#c2410c",
  "#15803d",
  "#7c3aed",
  "#b91c1c",
  "#0e7490",
  "#a16207",
  "#be185d",
];

/**
 * Runs side by side: pick tasks, see their loss curves overlaid (by step or by time), the
 * settings that differ, their final figures, and download every metric as CSV. The choice
 * lives in the URL (?ids=a,b), so a link shows the same comparison.
 */
export function ComparePage() {
  const { t } = useTranslation();
  const trpc = useTRPC();
  const router = useRouter();
  const pathname = usePathname();
  const params = useSearchParams();
  const ids = (params.get("ids") ?? "").split(",").filter(Boolean).slice(0, MAX_RUNS);
  const [by, setBy] = useState<"step" | "time">("step");

  const list = useQuery(trpc.task.list.queryOptions({ limit: 100 }));
  const details = useQueries({
    queries: ids.map((id) => trpc.task.get.queryOptions({ id })),
  });
  const metrics = useQueries({
    queries: ids.map((id) => trpc.task.metrics.queryOptions({ id })),
  });

  const runs: RunToCompare[] = useMemo(
    () =>
      ids.flatMap((id, i) => {
        const task = details[i]?.data?.task;
        const rows = metrics[i]?.data;
        if (!task || !rows) return [];
        return [
          {
            id,
            name: task.name,
            status: task.status,
            model: task.model,
            trainer: task.trainer,
            hyperparameters: task.hyperparameters,
            limits: task.limits,
            metrics: rows,
          },
        ];
      }),
    [ids, details, metrics],
  );

  function choose(id: string, chosen: boolean) {
    const next = chosen ? [...ids, id] : ids.filter((x) => x !== id);
    const query = next.length ? `?ids=${next.join(",")}` : "";
    router.replace(`${pathname}${query}`, { scroll: false });
  }

  function downloadCsv() {
    const url = URL.createObjectURL(new Blob([metricsCsv(runs)], { type: "text/csv" }));
    const link = document.createElement("a");
    link.href = url;
    link.download = "metrics.csv";
    link.click();
    URL.revokeObjectURL(url);
  }

  const points = overlay(runs, by);
  const settings = settingsTable(runs);
  const figures = runs.map(finalFigures);
  const number = (v: number | null) => (v === null ? "—" : Number(v.toPrecision(4)).toString());

  return (
    <main className="compare">
      <section className="panel" aria-labelledby="compare-pick">
        <h1 id="compare-pick">{t("compare.title")}</h1>
        <p className="muted">{t("compare.pick", { max: MAX_RUNS })}</p>
        <ul className="compare-picker" data-testid="compare-picker">
          {(list.data?.items ?? []).map((task) => (
            <li key={task.id}>
              <label>
                <input
                  type="checkbox"
                  checked={ids.includes(task.id)}
                  disabled={!ids.includes(task.id) && ids.length >= MAX_RUNS}
                  onChange={(e) => choose(task.id, e.target.checked)}
                />
                {task.name} <span className="muted">({task.status})</span>
              </label>
            </li>
          ))}
        </ul>
      </section>
      {runs.length >= 2 && (
        <section className="panel" data-testid="comparison">
          <div className="toolbar">
            <h2>{t("compare.curves")}</h2>
            <label>
              {t("compare.by")}{" "}
              <select
                value={by}
                onChange={(e) => setBy(e.target.value === "time" ? "time" : "step")}
                data-testid="compare-by"
              >
                <option value="step">{t("compare.byStep")}</option>
                <option value="time">{t("compare.byTime")}</option>
              </select>
            </label>
            <button
              type="button"
              className="secondary"
              onClick={downloadCsv}
              data-testid="compare-csv"
            >
              {t("compare.csv")}
            </button>
          </div>
          <ChartFrame
            testId="compare-chart"
            points={points}
            x={{ dataKey: "x", unit: by === "time" ? " min" : "" }}
          >
            {runs.flatMap((run, i) => [
              <Line
                key={`${run.id}:loss`}
                name={run.name}
                dataKey={`${run.id}:loss`}
                stroke={COLORS[i % COLORS.length]}
                dot={false}
                isAnimationActive={false}
                connectNulls
              />,
              <Line
                key={`${run.id}:eval`}
                name={t("compare.evalOf", { name: run.name })}
                dataKey={`${run.id}:eval`}
                stroke={COLORS[i % COLORS.length]}
                strokeDasharray="4 3"
                dot={{ r: 2 }}
                isAnimationActive={false}
                connectNulls
              />,
            ])}
          </ChartFrame>

          <h2>{t("compare.figures")}</h2>
          <table className="compare-table" data-testid="compare-figures">
            <thead>
              <tr>
                <th>{t("compare.run")}</th>
                <th>{t("compare.status")}</th>
                <th>{t("compare.steps")}</th>
                <th>{t("compare.finalLoss")}</th>
                <th>{t("compare.finalEvalLoss")}</th>
                <th>{t("compare.bestEvalLoss")}</th>
                <th>{t("compare.minutes")}</th>
              </tr>
            </thead>
            <tbody>
              {figures.map((f) => (
                <tr key={f.id}>
                  <td>{f.name}</td>
                  <td>{f.status}</td>
                  <td>{f.steps ?? "—"}</td>
                  <td>{number(f.finalLoss)}</td>
                  <td>{number(f.finalEvalLoss)}</td>
                  <td>{number(f.bestEvalLoss)}</td>
                  <td>{f.seconds === null ? "—" : (f.seconds / 60).toFixed(1)}</td>
                </tr>
              ))}
            </tbody>
          </table>

          <h2>{t("compare.settings")}</h2>
          <table className="compare-table" data-testid="compare-settings">
            <thead>
              <tr>
                <th>{t("compare.setting")}</th>
                {runs.map((run) => (
                  <th key={run.id}>{run.name}</th>
                ))}
              </tr>
            </thead>
            <tbody>
              {settings.map((row) => (
                <tr key={row.setting} className={row.differs ? "differs" : undefined}>
                  <td>{row.setting}</td>
                  {row.values.map((value, i) => (
                    <td key={runs[i]!.id}>{value}</td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      )}
    </main>
  );
}
