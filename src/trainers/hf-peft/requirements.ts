import { createHash } from "node:crypto";

/**
 * The pinned requirements of the hf-peft trainer (requirements.txt beside train.py), with the
 * torch pin replaceable for another build of the same release line (CUDA instead of CPU). Pure.
 */

const TORCH_LINE = /^torch==\S+$/m;
/** `torch==2.13.0`, `torch==2.13.0+cu126`: an exact pin, nothing a shell or pip could read as more. */
const TORCH_REQUIREMENT = /^torch==[0-9][0-9A-Za-z.+!-]*$/;

/** The torch pin of a requirements text. */
export function torchRequirementOf(text: string): string {
  const line = TORCH_LINE.exec(text)?.[0];
  if (!line) throw new Error("the hf-peft requirements pin no torch (a line torch==...)");
  return line;
}

/** The requirements with `torch` (e.g. "torch==2.13.0") in place of the pinned build. */
export function withTorch(text: string, torch: string | undefined): string {
  torchRequirementOf(text);
  if (torch === undefined) return text;
  if (!TORCH_REQUIREMENT.test(torch)) {
    throw new Error(
      `--torch takes an exact pin such as torch==2.13.0, not ${JSON.stringify(torch)}`,
    );
  }
  return text.replace(TORCH_LINE, torch);
}

/**
 * What names an environment: the requirements installed and the interpreter it was made from
 * (another Python needs other wheels). Comments and blank lines do not count.
 */
export function requirementsHash(text: string, basePython: string): string {
  const pins = text
    .split("\n")
    .map((line) => line.replace(/#.*/, "").trim())
    .filter(Boolean);
  return createHash("sha256").update(JSON.stringify({ pins, basePython })).digest("hex");
}
