"use client";

import { useTranslation } from "react-i18next";
import { LanguageSwitcher } from "./LanguageSwitcher";

export function AppHeader() {
  const { t } = useTranslation();
  return (
    <header className="app-header">
      <span className="brand">{t("app.title")}</span>
      <nav>
        <a href="/finetune" aria-current="page">
          {t("app.finetune")}
        </a>
      </nav>
      <LanguageSwitcher />
    </header>
  );
}
