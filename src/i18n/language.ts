/** The languages the studio speaks; the first is the default and the one the server renders. */
export const LANGUAGES = ["en", "zh-CN"] as const;
export type Language = (typeof LANGUAGES)[number];
export const DEFAULT_LANGUAGE: Language = "en";

export const LANGUAGE_STORAGE_KEY = "finetune-studio.language";

/** A stored choice if it is one we speak, else the default. */
export function pickLanguage(stored: string | null | undefined): Language {
  return LANGUAGES.find((lang) => lang === stored) ?? DEFAULT_LANGUAGE;
}

export function readStoredLanguage(): Language {
  try {
    return pickLanguage(window.localStorage.getItem(LANGUAGE_STORAGE_KEY));
  } catch {
    // storage can be disabled (privacy settings): fall back to the default
    return DEFAULT_LANGUAGE;
  }
}

export function storeLanguage(language: Language): void {
  try {
    window.localStorage.setItem(LANGUAGE_STORAGE_KEY, language);
  } catch {
    // not remembered, but the switch still applies to this tab
  }
}
