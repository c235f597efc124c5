"use client";

import { useTranslation } from "react-i18next";
import type { TaskListItem } from "../trpc/types";
import { datasetLabel } from "./dataset-label";
import { StatusBadge } from "./StatusBadge";
import { TaskProgress } from "./TaskProgress";
import { useFormat } from "./use-format";

interface TaskRowProps {
  task: TaskListItem;
  selected: boolean;
  onSelect: (id: string) => void;
}

export function TaskRow({ task, selected, onSelect }: TaskRowProps) {
  const { t } = useTranslation();
  const format = useFormat();
  return (
    <tr
      className={selected ? "row selected" : "row"}
      data-testid="task-row"
      data-task-id={task.id}
      aria-selected={selected}
      onClick={() => onSelect(task.id)}
    >
      <td>
        <button type="button" className="link" onClick={() => onSelect(task.id)}>
          {task.name}
        </button>
      </td>
      <td className="mono col-model">{task.model}</td>
      <td className="mono col-dataset" title={task.datasetPath}>
        {datasetLabel(task.datasetPath)}
      </td>
      <td className="col-trainer">{t(`trainer.${task.trainer}`)}</td>
      <td>
        <StatusBadge status={task.status} />
      </td>
      <td>
        <TaskProgress progress={task.progress} status={task.status} />
      </td>
      <td className="nowrap col-created" title={format.dateTime(task.createdAt)}>
        {format.shortDateTime(task.createdAt)}
      </td>
    </tr>
  );
}
