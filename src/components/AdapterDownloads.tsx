"use client";

import { useQuery } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { useTRPC } from "../trpc/context";
import type { TaskDetails } from "../trpc/types";
import { ErrorNote } from "./ErrorNote";
import { ModelExport } from "./ModelExport";

/** What a finished LoRA run leaves to download; a full training leaves model.safetensors. */
const FILES = {
  lora: ["adapter_config.json", "adapter_model.safetensors", "trainer_state.json", "training.log"],
  pretrain: ["model.safetensors", "config.json", "trainer_state.json", "training.log"],
} as const;

/**
 * Links to the trained files once the task has completed (the trainer writes them last): the
 * ones its folder really holds, as the studio lists them, so a custom command that wrote no
 * adapter offers its log alone.
 */
export function AdapterDownloads({ task }: { task: TaskDetails["task"] }) {
  const { t } = useTranslation();
  const trpc = useTRPC();
  const completed = task.status === "completed";
  const files = useQuery(trpc.task.files.queryOptions({ id: task.id }, { enabled: completed }));
  if (!completed) return null;
  const wanted: readonly string[] = FILES[task.mode];
  const offered = files.data?.filter((file) => wanted.includes(file.name));
  return (
    <section aria-labelledby="downloads-title">
      <h3 id="downloads-title">{t("downloads.title")}</h3>
      {files.error && <ErrorNote error={files.error} />}
      {offered && (
        <ul className="downloads" data-testid="downloads">
          {offered.map((file) => (
            <li key={file.name}>
              <a href={`/api/tasks/${task.id}/files/${file.name}`} download data-file={file.name}>
                {file.name}
              </a>
            </li>
          ))}
        </ul>
      )}
      {task.trainer !== "command" && <ModelExport taskId={task.id} />}
    </section>
  );
}
