import type { Metadata } from "next";
import type { ReactNode } from "react";
import { AppHeader } from "../components/AppHeader";
import { I18nProvider } from "../i18n/I18nProvider";
import { TrpcProvider } from "../trpc/TrpcProvider";
import "./globals.css";

export const metadata: Metadata = {
  title: "Finetune Studio",
  description: "LoRA fine-tuning whose training runs survive studio restarts",
};

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <html lang="en">
      <body>
        <I18nProvider>
          <TrpcProvider>
            <AppHeader />
            {children}
          </TrpcProvider>
        </I18nProvider>
      </body>
    </html>
  );
}
