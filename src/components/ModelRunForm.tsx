"use client";

import type { ReactNode } from "react";
import { useTranslation } from "react-i18next";
import { ErrorNote } from "./ErrorNote";
import type { ModelChoices } from "./model-choice";

/** One setting of the form: its label and its control. */
export interface RunSetting {
  label: string;
  control: ReactNode;
}

/**
 * The form the playground and evaluations share: which trained weights to run (the final adapter
 * or a checkpoint, `name`-checkpoint), the settings of their own beside it, the button that runs,
 * another action while it runs (the playground's Stop), and what the studio refused.
 */
export function ModelRunForm({
  name,
  choices,
  weights,
  onWeights,
  settings,
  run,
  stop,
  error,
}: {
  /** Names the weights' test id. */
  name: string;
  choices: ModelChoices;
  /** "" for the final adapter, else a checkpoint's name. */
  weights: string;
  onWeights: (weights: string) => void;
  settings: RunSetting[];
  run: { label: string; testId: string; disabled: boolean; onClick: () => void };
  stop?: { label: string; onClick: () => void } | null;
  error?: { message: string; data?: { code?: string } | null } | null;
}) {
  const { t } = useTranslation();
  const fields: RunSetting[] = [
    {
      label: t("playground.weights"),
      control: (
        <select
          data-testid={`${name}-checkpoint`}
          value={weights}
          onChange={(e) => onWeights(e.target.value)}
        >
          {choices.final && <option value="">{t("playground.final")}</option>}
          {choices.checkpoints.map((checkpoint) => (
            <option key={checkpoint} value={checkpoint}>
              {checkpoint}
            </option>
          ))}
        </select>
      ),
    },
    ...settings,
  ];
  return (
    <>
      <div className="inline-fields">
        {fields.map((field) => (
          // biome-ignore lint/a11y/noLabelWithoutControl: each control is rendered inside its label
          <label key={field.label}>
            {field.label} {field.control}
          </label>
        ))}
      </div>
      <button type="button" data-testid={run.testId} disabled={run.disabled} onClick={run.onClick}>
        {run.label}
      </button>{" "}
      {stop && (
        <button type="button" className="secondary" onClick={stop.onClick}>
          {stop.label}
        </button>
      )}
      {error && <ErrorNote error={error} />}
    </>
  );
}
