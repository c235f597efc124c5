"use client";

import { useMutation, useQueryClient } from "@tanstack/react-query";
import { type FormEvent, useState } from "react";
import { useTranslation } from "react-i18next";
import { validationMessage } from "../i18n/validation-message";
import { useTRPC } from "../trpc/context";
import { DATASET_OPTIONS_ID, DatasetPicker } from "./DatasetPicker";
import { ErrorNote } from "./ErrorNote";
import { FormField } from "./FormField";
import { serverValidationIssues } from "./server-issues";
import { TrainerReadiness } from "./TrainerReadiness";
import {
  defaultFormValues,
  type FieldErrors,
  type FormField as FieldName,
  groupIssues,
  MODE_OPTIONS,
  type TaskFormValues,
  TRAINER_OPTIONS,
  validateForm,
  withTrainer,
} from "./task-form";
import type { ValidationIssue } from "./validation-issue";

const NUMBER_FIELDS = [
  { field: "epochs", step: "1" },
  { field: "learningRate", step: "any" },
  { field: "batchSize", step: "1" },
  { field: "loraRank", step: "1" },
  { field: "loraAlpha", step: "any" },
] as const;

/**
 * Creates a task. The shared schema checks the input here first; what the server still
 * refuses comes back as zod issues (placed next to their fields) or as one message.
 */
export function CreateTaskForm({ onCreated }: { onCreated: (id: string) => void }) {
  const { t } = useTranslation();
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const [values, setValues] = useState<TaskFormValues>(defaultFormValues);
  const [fieldErrors, setFieldErrors] = useState<FieldErrors>({});
  const [otherIssues, setOtherIssues] = useState<ValidationIssue[]>([]);

  const create = useMutation(
    trpc.task.create.mutationOptions({
      onSuccess: async (task) => {
        await Promise.all([
          queryClient.invalidateQueries(trpc.task.list.pathFilter()),
          queryClient.invalidateQueries(trpc.studio.info.pathFilter()),
        ]);
        setValues(defaultFormValues());
        onCreated(task.id);
      },
      onError: (error) => {
        const grouped = groupIssues(serverValidationIssues(error));
        setFieldErrors(grouped.fields);
        setOtherIssues(grouped.other);
      },
    }),
  );

  const set = (field: FieldName) => (value: string) =>
    setValues((current) => ({ ...current, [field]: value }));

  function submit(event: FormEvent) {
    event.preventDefault();
    const checked = validateForm(values);
    if (!checked.ok) {
      setFieldErrors(checked.fields);
      setOtherIssues(checked.other);
      return;
    }
    setFieldErrors({});
    setOtherIssues([]);
    create.mutate(checked.input);
  }

  // field-level issues are shown in place; a refusal that names no field is shown once, below
  const showServerError = create.error && serverValidationIssues(create.error).length === 0;

  return (
    <form className="panel form" onSubmit={submit} noValidate data-testid="create-task-form">
      <header className="panel-header">
        <h2>{t("form.title")}</h2>
      </header>

      <fieldset>
        <legend>{t("form.sections.basics")}</legend>
        <FormField id="name" label={t("form.fields.name")} issue={fieldErrors.name}>
          {(control) => (
            <input {...control} value={values.name} onChange={(e) => set("name")(e.target.value)} />
          )}
        </FormField>
        <FormField
          id="model"
          label={t("form.fields.model")}
          hint={t("form.hints.model")}
          issue={fieldErrors.model}
        >
          {(control) => (
            <input
              {...control}
              className="mono"
              value={values.model}
              onChange={(e) => set("model")(e.target.value)}
            />
          )}
        </FormField>
        <FormField
          id="dataset"
          label={t("form.fields.dataset")}
          hint={t("form.hints.dataset")}
          issue={fieldErrors.dataset}
        >
          {(control) => (
            <input
              {...control}
              className="mono"
              list={DATASET_OPTIONS_ID}
              autoComplete="off"
              value={values.dataset}
              onChange={(e) => set("dataset")(e.target.value)}
            />
          )}
        </FormField>
        <DatasetPicker value={values.dataset} onChange={set("dataset")} />
        <div className="row-2">
          <FormField id="trainer" label={t("form.fields.trainer")} issue={fieldErrors.trainer}>
            {(control) => (
              <select
                {...control}
                value={values.trainer}
                onChange={(e) => {
                  const trainer = TRAINER_OPTIONS.find((kind) => kind === e.target.value);
                  if (trainer) setValues((current) => withTrainer(current, trainer));
                }}
              >
                {TRAINER_OPTIONS.map((kind) => (
                  <option key={kind} value={kind}>
                    {t(`trainer.${kind}`)}
                  </option>
                ))}
              </select>
            )}
          </FormField>
          <FormField id="mode" label={t("form.fields.mode")} issue={fieldErrors.mode}>
            {(control) => (
              <select
                {...control}
                value={values.mode}
                onChange={(e) => set("mode")(e.target.value)}
              >
                {MODE_OPTIONS.map((mode) => (
                  <option key={mode} value={mode}>
                    {t(`mode.${mode}`)}
                  </option>
                ))}
              </select>
            )}
          </FormField>
        </div>
        {values.trainer === "hf-peft" && <TrainerReadiness />}
        {values.trainer === "command" && (
          <FormField id="command" label={t("form.fields.command")} issue={fieldErrors.command}>
            {(control) => (
              <textarea
                {...control}
                className="mono"
                rows={3}
                value={values.command}
                onChange={(e) => set("command")(e.target.value)}
              />
            )}
          </FormField>
        )}
      </fieldset>

      <fieldset>
        <legend>{t("form.sections.hyperparameters")}</legend>
        <div className="grid-fields">
          {NUMBER_FIELDS.map(({ field, step }) => (
            <FormField
              key={field}
              id={field}
              label={t(`form.fields.${field}`)}
              issue={fieldErrors[field]}
            >
              {(control) => (
                <input
                  {...control}
                  type="number"
                  inputMode="decimal"
                  step={step}
                  value={values[field]}
                  onChange={(e) => set(field)(e.target.value)}
                />
              )}
            </FormField>
          ))}
        </div>
      </fieldset>

      <fieldset>
        <legend>{t("form.sections.resources")}</legend>
        <FormField
          id="gpus"
          label={t("form.fields.gpus")}
          hint={t("form.hints.gpus")}
          issue={fieldErrors.gpus}
        >
          {(control) => (
            <input
              {...control}
              type="number"
              min={0}
              step={1}
              value={values.gpus}
              onChange={(e) => set("gpus")(e.target.value)}
            />
          )}
        </FormField>
      </fieldset>

      {otherIssues.length > 0 && (
        <ul className="error-note" role="alert" data-testid="form-errors">
          {otherIssues.map((issue) => (
            <li key={`${issue.path.join(".")}:${issue.code}`}>{validationMessage(t, issue)}</li>
          ))}
        </ul>
      )}
      {showServerError && <ErrorNote error={create.error} />}

      <div className="form-actions">
        <button type="submit" disabled={create.isPending} data-testid="create-task-submit">
          {create.isPending ? t("form.submitting") : t("form.submit")}
        </button>
        <button
          type="button"
          className="secondary"
          onClick={() => {
            setValues(defaultFormValues());
            setFieldErrors({});
            setOtherIssues([]);
            create.reset();
          }}
        >
          {t("form.reset")}
        </button>
      </div>
    </form>
  );
}
