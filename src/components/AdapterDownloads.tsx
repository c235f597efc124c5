"use client";

import { useTranslation } from "react-i18next";
import type { TaskDetails } from "../trpc/types";
import { ModelExport } from "./ModelExport";

/** What a finished LoRA run leaves to download; a full training leaves model.safetensors. */
const FILES = {
  lora: ["adapter_config.json", "adapter_model.safetensors", "trainer_state.json"],
  pretrain: ["model.safetensors", "config.json", "trainer_state.json"],
} as const;

/**
 * Links to the trained files once the task has completed (the trainer writes them last). A file
 * a trainer did not write answers 404; the log is always there.
 */
export function AdapterDownloads({ task }: { task: TaskDetails["task"] }) {
  const { t } = useTranslation();
  if (task.status !== "completed") return null;
  const names = [...(task.mode === "pretrain" ? FILES.pretrain : FILES.lora), "training.log"];
  return (
    <section aria-labelledby="downloads-title">
      <h3 id="downloads-title">{t("downloads.title")}</h3>
      <ul className="downloads" data-testid="downloads">
        {names.map((name) => (
          <li key={name}>
            <a href={`/api/tasks/${task.id}/files/${name}`} download data-file={name}>
              {name}
            </a>
          </li>
        ))}
      </ul>
      {task.trainer !== "command" && <ModelExport taskId={task.id} />}
    </section>
  );
}
