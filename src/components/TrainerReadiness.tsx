"use client";

import { useQuery } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { useTRPC } from "../trpc/context";

/**
 * Under the trainer choice, for the Hugging Face PEFT trainer: the interpreter it runs with and
 * what it found, or that it is not set up and the command that sets it up. Asked again every
 * 15 s, so a setup run meanwhile shows without reloading the page.
 */
export function TrainerReadiness() {
  const { t } = useTranslation();
  const trpc = useTRPC();
  const trainers = useQuery(
    trpc.studio.trainers.queryOptions(undefined, { refetchInterval: 15_000 }),
  );
  const hfPeft = trainers.data?.hfPeft;
  if (!hfPeft) return null;
  if (hfPeft.ok) {
    const { torch } = hfPeft.summary.packages;
    const gpus = hfPeft.summary.cuda.devices.length;
    return (
      <p className="hint" data-testid="hf-peft-ready">
        {t("form.hfPeft.ready", {
          python: hfPeft.python,
          torch: torch ?? "?",
          devices: gpus > 0 ? t("form.hfPeft.gpus", { count: gpus }) : t("form.hfPeft.cpu"),
        })}
      </p>
    );
  }
  return (
    <div className="reason log-warning" role="status" data-testid="hf-peft-not-ready">
      <strong>{t("form.hfPeft.notReady")}</strong>
      <ul>
        {hfPeft.problems.map((problem) => (
          <li key={problem}>{problem}</li>
        ))}
      </ul>
      <p>
        {t("form.hfPeft.setUp")} <code>npx {hfPeft.setupCommand}</code>
      </p>
    </div>
  );
}
