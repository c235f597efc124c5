import type { DatasetFormat } from "../protocol";

/**
 * For instruction data: the prompt a model is given and the answer it should give, cut from a
 * row's training text (dataset.ts's rowToText) at the last answer marker, so the prompt is
 * exactly what the model saw before the answer in training (pure).
 */

export interface InstructionPair {
  prompt: string;
  expected: string;
}

const ANSWER_MARKERS: Partial<Record<DatasetFormat, string>> = {
  alpaca: "### Response:\n",
  chat: "<|assistant|>\n",
};

/** null for plain text, or a text with no answer marker. */
export function instructionPair(text: string, format: DatasetFormat): InstructionPair | null {
  const marker = ANSWER_MARKERS[format];
  if (!marker) return null;
  const at = text.lastIndexOf(marker);
  if (at < 0) return null;
  const cut = at + marker.length;
  const answer = text.slice(cut);
  // A chat may go on after the assistant's last turn (a user message): the answer ends there.
  const end = format === "chat" ? answer.search(/\n<\|(system|user|assistant)\|>\n/) : -1;
  return { prompt: text.slice(0, cut), expected: end >= 0 ? answer.slice(0, end) : answer };
}

/** Exact match, as people mean it: equal once surrounding whitespace is ignored. */
export function isExactMatch(generated: string, expected: string): boolean {
  return generated.trim() === expected.trim();
}

/** exp(mean token loss); null when there is nothing to average. */
export function perplexityOf(lossSum: number, tokens: number): number | null {
  if (tokens === 0 || !Number.isFinite(lossSum)) return null;
  return Math.exp(lossSum / tokens);
}
