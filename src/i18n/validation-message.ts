import type { TFunction } from "i18next";
import type { ValidationIssue } from "../components/validation-issue";

/**
 * The shared schema words its own messages in English; the page shows them in the reader's
 * language, from what the issue says (its code and bounds). A few custom checks are recognised
 * by their path; anything unknown falls back to the schema's own words.
 */
export function validationMessage(t: TFunction, issue: ValidationIssue): string {
  const field = issue.path.at(-1);
  switch (issue.code) {
    case "too_small":
      if (issue.origin === "string") {
        return issue.minimum === 1 ? t("validation.required") : issue.message;
      }
      return issue.inclusive === false
        ? t("validation.greaterThan", { minimum: issue.minimum })
        : t("validation.atLeast", { minimum: issue.minimum });
    case "too_big":
      if (issue.origin === "string") return t("validation.tooLong", { maximum: issue.maximum });
      return issue.inclusive === false
        ? t("validation.lessThan", { maximum: issue.maximum })
        : t("validation.atMost", { maximum: issue.maximum });
    case "invalid_type":
      if (issue.expected === "int") return t("validation.integer");
      if (issue.expected === "number") return t("validation.number");
      return t("validation.invalid");
    case "invalid_format":
      return field === "model" ? t("validation.modelFormat") : issue.message;
    case "custom":
      if (field === "gpus") return t("validation.builtinCpuOnly");
      // the form sends a command only for the command trainer, so the one issue left is a missing one
      if (field === "command") return t("validation.commandNeeded");
      return issue.message;
    default:
      return issue.message;
  }
}
