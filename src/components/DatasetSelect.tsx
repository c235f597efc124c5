"use client";

import { useTranslation } from "react-i18next";
import type { RouterOutputs } from "../trpc/types";

type Dataset = RouterOutputs["dataset"]["list"][number];

/** A choice of stored dataset, each named with its rows and format (evaluations, evaluation sets). */
export function DatasetSelect({
  testId,
  datasets,
  value,
  onChange,
}: {
  testId: string;
  datasets: readonly Dataset[];
  value: string;
  onChange: (id: string) => void;
}) {
  const { t } = useTranslation();
  return (
    <select data-testid={testId} value={value} onChange={(e) => onChange(e.target.value)}>
      {datasets.map((d) => (
        <option key={d.id} value={d.id}>
          {t("datasets.option", { name: d.name, rows: d.rowCount, format: d.format })}
        </option>
      ))}
    </select>
  );
}
