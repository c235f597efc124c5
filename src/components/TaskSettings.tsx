"use client";

import { useTranslation } from "react-i18next";
import { hyperparametersSchema } from "../trainers/protocol";
import type { TaskDetails } from "../trpc/types";

type Task = TaskDetails["task"];

/** The frozen settings of a task: what its trainer reads. */
export function TaskSettings({ task }: { task: Task }) {
  const { t } = useTranslation();
  // in the schema's order (the database keeps JSON keys in its own order)
  const hyperparameters = Object.keys(hyperparametersSchema.shape)
    .filter((key) => key in task.hyperparameters)
    .map((key) => [key, (task.hyperparameters as Record<string, unknown>)[key]] as const);
  return (
    <section aria-labelledby="settings-title">
      <h3 id="settings-title">{t("detail.settings")}</h3>
      <dl className="facts" data-testid="task-settings">
        <dt>{t("detail.settingsFields.model")}</dt>
        <dd className="mono">{task.model}</dd>
        <dt>{t("detail.settingsFields.dataset")}</dt>
        <dd className="mono" data-testid="task-dataset">
          {task.datasetPath}
        </dd>
        <dt>{t("detail.datasetFormat")}</dt>
        <dd>{task.datasetFormat}</dd>
        <dt>{t("detail.settingsFields.trainer")}</dt>
        <dd>{t(`trainer.${task.trainer}`)}</dd>
        <dt>{t("detail.settingsFields.mode")}</dt>
        <dd>{t(`mode.${task.mode}`)}</dd>
        <dt>{t("detail.settingsFields.gpus")}</dt>
        <dd>{task.gpusRequested}</dd>
        {task.command && (
          <>
            <dt>{t("detail.settingsFields.command")}</dt>
            <dd className="mono">{task.command.join(" ")}</dd>
          </>
        )}
        {hyperparameters.map(([key, value]) => (
          <HyperparameterFact key={key} name={key} value={value} />
        ))}
      </dl>
    </section>
  );
}

function HyperparameterFact({ name, value }: { name: string; value: unknown }) {
  const { t } = useTranslation();
  return (
    <>
      <dt>{t(`detail.hyperparameters.${name}`, { defaultValue: name })}</dt>
      <dd className="mono" data-testid={`hp-${name}`}>
        {Array.isArray(value) ? value.join(", ") : String(value)}
      </dd>
    </>
  );
}
