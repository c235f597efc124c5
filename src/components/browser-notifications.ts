import { type NotificationKind, notificationFor } from "../shared/notification-decision";

/**
 * Browser notifications for the page's live task updates: the same events as the webhook's
 * (../shared/notification-decision), shown while the page is open, once a person turned them on
 * with the page's control. Permission is the browser's; "on" is remembered per browser.
 */

export const NOTIFY_STORAGE_KEY = "finetune-studio.notify";

/** unsupported: no Notification API here (or not a secure context); blocked: denied by the browser. */
export type NotifyState = "unsupported" | "blocked" | "off" | "on";

/** Pure: what the control shows, from the browser's permission (null: no API) and the stored choice. */
export function notifyState(
  permission: NotificationPermission | null,
  wanted: boolean,
): NotifyState {
  if (permission === null) return "unsupported";
  if (permission === "denied") return "blocked";
  return permission === "granted" && wanted ? "on" : "off";
}

/** The fields of a live update this needs (the task's row and the event that came with it). */
export interface NotifiableUpdate {
  id: string;
  name: string;
  event?: { id: number; type: string; message: string; data: Record<string, unknown> | null };
}

export interface TaskNotification {
  kind: NotificationKind;
  name: string;
  body: string;
  /** One notification per event, even with the page open in several tabs. */
  tag: string;
}

/** Pure: the notification a live update makes, or null. */
export function taskNotification(update: NotifiableUpdate): TaskNotification | null {
  const event = update.event;
  if (!event) return null;
  const kind = notificationFor(event.type, event.data);
  if (!kind) return null;
  return { kind, name: update.name, body: event.message, tag: `task-event-${event.id}` };
}

function permission(): NotificationPermission | null {
  return typeof window !== "undefined" && "Notification" in window && window.isSecureContext
    ? Notification.permission
    : null;
}

function wanted(): boolean {
  try {
    return window.localStorage.getItem(NOTIFY_STORAGE_KEY) === "on";
  } catch {
    return false; // storage disabled: never on without asking again
  }
}

export function currentNotifyState(): NotifyState {
  return notifyState(permission(), permission() === null ? false : wanted());
}

/** Turns notifications on (asking the browser's permission when needed) or off; the new state. */
export async function setNotify(on: boolean): Promise<NotifyState> {
  let granted = permission() === "granted";
  if (on && !granted && permission() === "default") {
    granted = (await Notification.requestPermission()) === "granted";
  }
  try {
    window.localStorage.setItem(NOTIFY_STORAGE_KEY, on && granted ? "on" : "off");
  } catch {
    // not remembered: the state below says so
  }
  return currentNotifyState();
}

/** Shows it when notifications are on; `title` is the translated headline. */
export function showTaskNotification(notification: TaskNotification, title: string): void {
  if (currentNotifyState() !== "on") return;
  try {
    new Notification(title, { body: notification.body, tag: notification.tag });
  } catch {
    // some browsers (Android Chrome) show notifications only through a service worker
  }
}
