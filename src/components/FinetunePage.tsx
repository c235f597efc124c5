"use client";

import { usePathname, useRouter, useSearchParams } from "next/navigation";
import { useTranslation } from "react-i18next";
import type { TaskStatusName } from "../trpc/types";
import { ConditionBanners } from "./ConditionBanners";
import { CreateTaskForm } from "./CreateTaskForm";
import { LiveIndicator } from "./LiveIndicator";
import { NotificationToggle } from "./NotificationToggle";
import { RestartBanner } from "./RestartBanner";
import { TaskDetail } from "./TaskDetail";
import { TaskList } from "./TaskList";
import { TASK_STATUSES } from "./task-statuses";
import { useLiveTaskUpdates } from "./use-live-task-updates";

function statusFrom(value: string | null): TaskStatusName | null {
  return TASK_STATUSES.find((status) => status === value) ?? null;
}

/**
 * The list on the left; on the right the selected task or the create form. The selection and
 * the filter live in the URL, so a reload or a shared link shows the same view.
 */
export function FinetunePage() {
  const { t } = useTranslation();
  const router = useRouter();
  const pathname = usePathname();
  const params = useSearchParams();
  const selectedId = params.get("task");
  const status = statusFrom(params.get("status"));
  const liveStatus = useLiveTaskUpdates();

  function navigate(changes: Record<string, string | null>) {
    const next = new URLSearchParams(params.toString());
    for (const [key, value] of Object.entries(changes)) {
      if (value === null) next.delete(key);
      else next.set(key, value);
    }
    const query = next.toString();
    router.replace(query ? `${pathname}?${query}` : pathname, { scroll: false });
  }

  return (
    <main className={selectedId ? "finetune with-detail" : "finetune"}>
      <div className="finetune-banner">
        <ConditionBanners />
        <RestartBanner />
      </div>
      <div className="finetune-list">
        <div className="toolbar">
          <h1>{t("app.finetune")}</h1>
          <LiveIndicator state={liveStatus} />
          <NotificationToggle />
          <button
            type="button"
            data-testid="new-task"
            disabled={selectedId === null}
            onClick={() => navigate({ task: null })}
          >
            {t("list.newTask")}
          </button>
        </div>
        <TaskList
          status={status}
          onStatusChange={(s) => navigate({ status: s })}
          selectedId={selectedId}
          onSelect={(id) => navigate({ task: id })}
        />
      </div>
      <div className="finetune-side">
        {selectedId ? (
          <TaskDetail key={selectedId} id={selectedId} onClose={() => navigate({ task: null })} />
        ) : (
          <CreateTaskForm onCreated={(id) => navigate({ task: id })} />
        )}
      </div>
    </main>
  );
}
