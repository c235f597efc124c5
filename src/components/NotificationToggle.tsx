"use client";

import { useEffect, useState } from "react";
import { useTranslation } from "react-i18next";
import { currentNotifyState, type NotifyState, setNotify } from "./browser-notifications";

/** The page's control for browser notifications: turn on (asks the browser once), turn off. */
export function NotificationToggle() {
  const { t } = useTranslation();
  // The server renders nothing: permission is known only in the browser.
  const [state, setState] = useState<NotifyState>("unsupported");
  useEffect(() => setState(currentNotifyState()), []);
  if (state === "unsupported") return null;
  if (state === "blocked") {
    return (
      <span className="muted notify" data-testid="notify-toggle" data-state={state}>
        {t("notify.blocked")}
      </span>
    );
  }
  return (
    <button
      type="button"
      className="secondary notify"
      data-testid="notify-toggle"
      data-state={state}
      aria-pressed={state === "on"}
      title={t(state === "on" ? "notify.turnOff" : "notify.turnOn")}
      onClick={() => void setNotify(state !== "on").then(setState)}
    >
      {t(state === "on" ? "notify.on" : "notify.off")}
    </button>
  );
}
