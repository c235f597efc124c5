"use client";

import { useTranslation } from "react-i18next";
import type { TaskDetails } from "../trpc/types";
import { useFormat } from "./use-format";

type TaskEvent = TaskDetails["events"][number];

/** What happened to the task, oldest first, as the studio recorded it. */
export function EventTimeline({ events }: { events: TaskEvent[] }) {
  const { t } = useTranslation();
  const format = useFormat();
  return (
    <section aria-labelledby="events-title">
      <h3 id="events-title">{t("detail.events")}</h3>
      {events.length === 0 ? (
        <p className="muted">{t("detail.noEvents")}</p>
      ) : (
        <ol className="timeline" data-testid="event-timeline">
          {events.map((event) => (
            <li key={event.id} data-testid="event" data-event-type={event.type}>
              <time dateTime={new Date(event.at).toISOString()}>{format.dateTime(event.at)}</time>
              <span className={`event-type event-${event.type}`}>
                {t(`eventType.${event.type}`, { defaultValue: event.type })}
              </span>
              {event.attempt !== null && (
                <span className="muted">
                  {t("detail.attempt.number", { number: event.attempt })}
                </span>
              )}
              {event.message && <span className="event-message">{event.message}</span>}
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
