"use client";

import type { ReactNode } from "react";
import { useTranslation } from "react-i18next";
import { validationMessage } from "../i18n/validation-message";
import type { ValidationIssue } from "./validation-issue";

interface FormFieldProps {
  /** The input's id; also names the error element (`error-<id>`) for tests and screen readers. */
  id: string;
  label: string;
  hint?: string;
  issue?: ValidationIssue;
  /** Renders the control, given the attributes that tie it to its label, hint and error. */
  children: (control: {
    id: string;
    name: string;
    "aria-invalid": boolean;
    "aria-describedby"?: string;
  }) => ReactNode;
}

/** A label, a control, a hint and the control's own error, right under it. */
export function FormField({ id, label, hint, issue, children }: FormFieldProps) {
  const { t } = useTranslation();
  const hintId = hint ? `hint-${id}` : undefined;
  const errorId = issue ? `error-${id}` : undefined;
  const describedBy = [hintId, errorId].filter(Boolean).join(" ") || undefined;
  return (
    <div className={issue ? "field invalid" : "field"}>
      <label htmlFor={id}>{label}</label>
      {children({
        id,
        name: id,
        "aria-invalid": issue !== undefined,
        "aria-describedby": describedBy,
      })}
      {hint && (
        <small id={hintId} className="hint">
          {hint}
        </small>
      )}
      {issue && (
        <small id={errorId} className="field-error" data-testid={`error-${id}`} role="alert">
          {validationMessage(t, issue)}
        </small>
      )}
    </div>
  );
}
