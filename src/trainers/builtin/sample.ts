import type { GenerationSettings } from "../playground/protocol";
import { generateText } from "./generate";
import { loadInferenceModel } from "./inference";

/** Text generation from a finished task: its base model plus its adapter (or its pretrained weights). */

export type SampleOptions = Omit<GenerationSettings, "topP"> & { topP?: number };

export async function sampleText(
  taskDir: string,
  prompt: string,
  opts: SampleOptions,
): Promise<string> {
  const model = await loadInferenceModel(taskDir, taskDir);
  try {
    let text = "";
    for (const piece of generateText(model, "adapter", prompt, { topP: 1, ...opts })) text += piece;
    return text;
  } finally {
    await model.dispose();
  }
}
