import type { NotificationKind } from "../../shared/notification-decision";
import type { StoredNotification } from "./payload";

/** The version of the json format's body: a receiver can tell what it is reading. */
export const WEBHOOK_BODY_VERSION = 1;

export type WebhookFormat = "json" | "slack";

export interface BodyInput {
  payload: StoredNotification;
  deliveryId: string;
  format: WebhookFormat;
  /** Where people open the studio (no trailing slash needed). */
  studioUrl: string;
}

/** The task's page in the studio. */
export function taskPageUrl(studioUrl: string, taskId: string): string {
  return `${studioUrl.replace(/\/+$/, "")}/finetune?task=${encodeURIComponent(taskId)}`;
}

/** The body of a delivery, pure: the same for every try of one notification. */
export function webhookBody(input: BodyInput): string {
  return input.format === "slack"
    ? JSON.stringify({ text: slackText(input) })
    : JSON.stringify(jsonBody(input));
}

function jsonBody({ payload, deliveryId, studioUrl }: BodyInput) {
  return {
    version: WEBHOOK_BODY_VERSION,
    deliveryId,
    event: payload.kind,
    task: {
      id: payload.taskId,
      name: payload.taskName,
      url: taskPageUrl(studioUrl, payload.taskId),
    },
    attempt: payload.attempt,
    message: payload.message,
    cause: payload.cause,
    studio: { url: studioUrl.replace(/\/+$/, "") },
    at: payload.at,
  };
}

const HEADLINE: Record<NotificationKind, { mark: string; words: string }> = {
  completed: { mark: "✅", words: "completed" },
  failed: { mark: "❌", words: "failed" },
  cancelled: { mark: "⏹️", words: "was cancelled" },
  interrupted: { mark: "⚠️", words: "was interrupted" },
  "auto-retry": { mark: "🔁", words: "will be retried automatically" },
  "rolled-back": { mark: "⏪", words: "was rolled back to an earlier checkpoint" },
  recovered: { mark: "🔄", words: "was recovered" },
  stalled: { mark: "⏳", words: "has stalled" },
  diverged: { mark: "📈", words: "diverged" },
};

/** Discord takes at most 2,000 characters of text; the rest of the text stays well under that. */
const MESSAGE_MAX = 1_500;

/**
 * Slack's `text` reads `&`, `<` and `>` as markup: `<!channel>` in a task's name would notify a
 * whole channel. Escaped as Slack asks, so names and messages are shown, never obeyed.
 */
function escapeSlack(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function slackText({ payload, studioUrl }: BodyInput): string {
  const { mark, words } = HEADLINE[payload.kind];
  const chars = [...payload.message];
  const message =
    chars.length > MESSAGE_MAX ? `${chars.slice(0, MESSAGE_MAX).join("")}…` : payload.message;
  return [
    `${mark} Task "${escapeSlack(payload.taskName)}" (${payload.taskId}) ${words}`,
    escapeSlack(message),
    ...(payload.cause ? [`Cause: ${escapeSlack(payload.cause)}`] : []),
    // A bare address: Slack, Mattermost and Discord each make it a link.
    taskPageUrl(studioUrl, payload.taskId),
  ].join("\n");
}
