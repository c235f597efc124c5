"use client";

import { createInstance, type i18n as I18n } from "i18next";
import { type ReactNode, useEffect, useState } from "react";
import { I18nextProvider, initReactI18next } from "react-i18next";
import { DEFAULT_LANGUAGE, readStoredLanguage } from "./language";
import { resources } from "./resources";

function createI18n(): I18n {
  const instance = createInstance();
  instance.use(initReactI18next).init({
    resources,
    lng: DEFAULT_LANGUAGE,
    fallbackLng: DEFAULT_LANGUAGE,
    interpolation: { escapeValue: false }, // React escapes already
    initAsync: false,
  });
  return instance;
}

/**
 * The server renders in the default language; the stored choice applies right after the page
 * hydrates, so server and browser markup match.
 */
export function I18nProvider({ children }: { children: ReactNode }) {
  const [i18n] = useState(createI18n);
  useEffect(() => {
    const syncHtmlLang = (lng: string) => {
      document.documentElement.lang = lng;
    };
    i18n.on("languageChanged", syncHtmlLang);
    void i18n.changeLanguage(readStoredLanguage());
    return () => i18n.off("languageChanged", syncHtmlLang);
  }, [i18n]);
  return <I18nextProvider i18n={i18n}>{children}</I18nextProvider>;
}
