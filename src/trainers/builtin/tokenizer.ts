/** Byte-level vocabulary: the 256 byte values, then a begin and an end marker. */
export const BOS = 256;
export const EOS = 257;
export const VOCAB_SIZE = 258;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: false });

/** One training sequence: BOS, the UTF-8 bytes, EOS, cut to at most `maxTokens` tokens. */
export function encodeForTraining(text: string, maxTokens: number): number[] {
  const tokens = [BOS, ...encoder.encode(text), EOS];
  return tokens.slice(0, maxTokens);
}

/** A prompt to continue: BOS and the bytes, no EOS. */
export function encodePrompt(text: string): number[] {
  return [BOS, ...encoder.encode(text)];
}

/** Bytes back to text; markers are dropped and broken UTF-8 becomes U+FFFD. */
export function decode(tokens: number[]): string {
  return decoder.decode(Uint8Array.from(tokens.filter((t) => t < 256)));
}
