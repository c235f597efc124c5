"use client";

import { useTranslation } from "react-i18next";
import { LANGUAGES, type Language, pickLanguage, storeLanguage } from "../i18n/language";

/** Each language named in itself, so a reader finds theirs whatever is shown now. */
const NATIVE_NAMES: Record<Language, string> = { en: "English", "zh-CN": "简体中文" };

export function LanguageSwitcher() {
  const { t, i18n } = useTranslation();
  return (
    <label className="language">
      <span>{t("app.language")}</span>
      <select
        data-testid="language-switcher"
        value={pickLanguage(i18n.language)}
        onChange={(e) => {
          const language = pickLanguage(e.target.value);
          storeLanguage(language);
          void i18n.changeLanguage(language);
        }}
      >
        {LANGUAGES.map((lang) => (
          <option key={lang} value={lang} lang={lang}>
            {NATIVE_NAMES[lang]}
          </option>
        ))}
      </select>
    </label>
  );
}
