"use client";

import { useQuery } from "@tanstack/react-query";
import { usePathname } from "next/navigation";
import { useTranslation } from "react-i18next";
import { useTRPC } from "../trpc/context";
import { LanguageSwitcher } from "./LanguageSwitcher";

export function AppHeader() {
  const { t } = useTranslation();
  const trpc = useTRPC();
  const pathname = usePathname();
  const onLogin = pathname === "/login";
  // Signed in with a session (a token is set): offer to end it. Not asked on the login form.
  const current = useQuery({
    ...trpc.session.current.queryOptions(),
    enabled: !onLogin,
    retry: false,
    staleTime: Number.POSITIVE_INFINITY,
  });
  return (
    <header className="app-header">
      <span className="brand">{t("app.title")}</span>
      <nav>
        <a href="/finetune" aria-current={pathname === "/finetune" ? "page" : undefined}>
          {t("app.finetune")}
        </a>
        <a href="/compare" aria-current={pathname === "/compare" ? "page" : undefined}>
          {t("app.compare")}
        </a>
      </nav>
      <LanguageSwitcher />
      {!onLogin && current.data?.session && (
        <form method="post" action="/api/logout">
          <button type="submit" className="secondary" data-testid="logout">
            {t("app.logout")}
          </button>
        </form>
      )}
    </header>
  );
}
