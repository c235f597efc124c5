"use client";

import { useQuery } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { useTRPC } from "../trpc/context";
import type { TaskStatusName } from "../trpc/types";
import { TASK_STATUSES } from "./task-statuses";

interface StatusFilterProps {
  value: TaskStatusName | null;
  onChange: (status: TaskStatusName | null) => void;
}

/** One chip per status, with how many tasks are in it. */
export function StatusFilter({ value, onChange }: StatusFilterProps) {
  const { t } = useTranslation();
  const trpc = useTRPC();
  const info = useQuery(trpc.studio.info.queryOptions(undefined, { refetchInterval: 15_000 }));
  const counts = info.data?.counts ?? {};
  const total = Object.values(counts).reduce((sum, n) => sum + (n ?? 0), 0);
  return (
    <fieldset className="chips">
      <legend className="visually-hidden">{t("list.filter")}</legend>
      <button
        type="button"
        className="chip"
        aria-pressed={value === null}
        data-testid="filter-all"
        data-count={info.data ? total : undefined}
        onClick={() => onChange(null)}
      >
        {t("status.all")} <span className="chip-count">{total}</span>
      </button>
      {TASK_STATUSES.map((status) => (
        <button
          key={status}
          type="button"
          className="chip"
          aria-pressed={value === status}
          data-testid={`filter-${status}`}
          onClick={() => onChange(status)}
        >
          {t(`status.${status}`)} <span className="chip-count">{counts[status] ?? 0}</span>
        </button>
      ))}
    </fieldset>
  );
}
