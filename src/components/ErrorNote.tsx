"use client";

import { useTranslation } from "react-i18next";

/** The parts of a failed tRPC call (or any error) this note shows. */
interface CallError {
  message: string;
  data?: { code?: string } | null;
}

/** A refused or failed call, said plainly; an expired session points to the sign-in page. */
export function ErrorNote({ error }: { error: CallError }) {
  const { t } = useTranslation();
  if (error.data?.code === "UNAUTHORIZED") {
    return (
      <p className="error-note" role="alert">
        <a href="/login">{t("errors.unauthorized")}</a>
      </p>
    );
  }
  return (
    <p className="error-note" role="alert">
      {t("errors.generic", { message: error.message })}
    </p>
  );
}
