import { z } from "zod";

/**
 * The generation server's protocol (`builtin-trainer serve`, hf-peft's serve.py): JSON lines.
 * The studio (or `studio task sample`) writes requests to its stdin, one a line; it answers on
 * stdout: `ready` once the model is loaded (or `fatal` and exits), then for each request its
 * `token`s as they are drawn and one `done` or `error`. Requests run side by side, a token of
 * each in turn; closing stdin ends the server. Version 1.
 */

export const PLAYGROUND_PROTOCOL_VERSION = 1;
/** Longer prompts are refused before any model sees them. */
export const MAX_PROMPT_CHARS = 8000;
export const MAX_NEW_TOKENS = 2000;

export const modelSideSchema = z.enum(["base", "adapter"]);
export type ModelSide = z.infer<typeof modelSideSchema>;

export const generationSettingsSchema = z.object({
  maxNewTokens: z.number().int().min(1).max(MAX_NEW_TOKENS),
  /** 0 = greedy. */
  temperature: z.number().min(0).max(5),
  topP: z.number().gt(0).max(1),
  seed: z
    .number()
    .int()
    .min(0)
    .max(2 ** 31 - 1),
});
export type GenerationSettings = z.infer<typeof generationSettingsSchema>;

export const generationRequestSchema = generationSettingsSchema.extend({
  id: z.string().min(1).max(64),
  side: modelSideSchema,
  prompt: z.string().max(MAX_PROMPT_CHARS),
});
export type GenerationRequest = z.infer<typeof generationRequestSchema>;

export const serverMessageSchema = z.discriminatedUnion("event", [
  z.object({ event: z.literal("ready"), version: z.number().int() }),
  z.object({ event: z.literal("fatal"), message: z.string() }),
  z.object({ event: z.literal("token"), id: z.string(), text: z.string() }),
  z.object({ event: z.literal("done"), id: z.string(), tokens: z.number().int().min(0) }),
  z.object({ event: z.literal("error"), id: z.string(), message: z.string() }),
]);
export type ServerMessage = z.infer<typeof serverMessageSchema>;
