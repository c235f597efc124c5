import { en } from "./en";
import type { Language } from "./language";
import { zhCN } from "./zh-CN";

export const resources: Record<Language, { translation: typeof en }> = {
  en: { translation: en },
  "zh-CN": { translation: zhCN },
};
