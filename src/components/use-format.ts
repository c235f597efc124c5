"use client";

import { useTranslation } from "react-i18next";

/** Dates and numbers in the reader's language. */
export function useFormat() {
  const { i18n } = useTranslation();
  const locale = i18n.language;
  return {
    dateTime(value: string | Date | null | undefined): string {
      if (!value) return "–";
      return new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "medium" }).format(
        new Date(value),
      );
    },
    /** A time of today to the second, on a 24-hour clock: 14:03:07. */
    time(value: string | Date): string {
      return new Intl.DateTimeFormat(locale, {
        hour: "2-digit",
        minute: "2-digit",
        second: "2-digit",
        hourCycle: "h23",
      }).format(new Date(value));
    },
    /** For table cells: minutes are enough, and the column stays narrow. */
    shortDateTime(value: string | Date): string {
      return new Intl.DateTimeFormat(locale, { dateStyle: "short", timeStyle: "short" }).format(
        new Date(value),
      );
    },
  };
}
