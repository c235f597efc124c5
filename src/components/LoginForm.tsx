"use client";

import { useTranslation } from "react-i18next";

/** A plain form post: the server checks the token and sets an HttpOnly session cookie. */
export function LoginForm({ failed }: { failed: boolean }) {
  const { t } = useTranslation();
  return (
    <main className="login">
      <form className="panel form" method="post" action="/api/login">
        <h1>{t("login.title")}</h1>
        <p className="muted">{t("login.intro")}</p>
        {failed && (
          <p className="error-note" role="alert" data-testid="login-error">
            {t("login.error")}
          </p>
        )}
        <div className="field">
          <label htmlFor="token">{t("login.token")}</label>
          <input id="token" name="token" type="password" autoComplete="current-password" required />
        </div>
        <div className="form-actions">
          <button type="submit">{t("login.submit")}</button>
        </div>
      </form>
    </main>
  );
}
