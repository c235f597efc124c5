import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { readDatasetTexts } from "../dataset";
import { EVAL_LIMITS, type EvalResults } from "../evaluate/eval-record";
import { instructionPair, isExactMatch, perplexityOf } from "../evaluate/instruction-pairs";
import { taskConfigSchema } from "../protocol";
import { generateText } from "./generate";
import { loadInferenceModel } from "./inference";
import { encodeForTraining, encodePrompt } from "./tokenizer";

/**
 * A finished task's model on a held-out dataset: the mean token loss (and perplexity) of the
 * trained weights and of the base alone, sequences cut as training cut them; for instruction
 * data, greedy answers compared with the expected ones, and a few shown.
 */
export async function evaluateModel(
  taskDir: string,
  source: string,
  datasetPath: string,
  format: Parameters<typeof readDatasetTexts>[1],
): Promise<EvalResults> {
  const config = taskConfigSchema.parse(
    JSON.parse(await readFile(join(taskDir, "config.json"), "utf8")),
  );
  const texts = (await readDatasetTexts(datasetPath, format)).slice(0, EVAL_LIMITS.lossRows);
  const model = await loadInferenceModel(taskDir, source);
  try {
    const context = model.config.contextLength;
    const maxTokens = Math.min(config.hyperparameters.maxLength, context + 1);
    const sequences = texts.map((t) => encodeForTraining(t, maxTokens));
    const batchSize = config.hyperparameters.batchSize;
    const trained = model.lossSum(sequences, "adapter", batchSize);
    const base = model.lossSum(sequences, "base", batchSize);
    const mean = (s: { loss: number; tokens: number }) => (s.tokens ? s.loss / s.tokens : null);

    const pairs = texts
      .map((t) => instructionPair(t, format))
      .filter((p) => p !== null)
      // A prompt the context cannot hold leaves no room to answer: not counted.
      .filter((p) => encodePrompt(p.prompt).length < context)
      .slice(0, EVAL_LIMITS.generationRows);
    let matched = 0;
    const samples: EvalResults["samples"] = [];
    for (const pair of pairs) {
      const budget = new TextEncoder().encode(pair.expected).length + 8;
      let generated = "";
      for (const piece of generateText(model, "adapter", pair.prompt, {
        maxNewTokens: budget,
        temperature: 0,
        topP: 1,
        seed: 0,
      })) {
        generated += piece;
      }
      if (isExactMatch(generated, pair.expected)) matched++;
      if (samples.length < EVAL_LIMITS.samples) samples.push({ ...pair, generated });
    }
    return {
      rows: sequences.length,
      tokens: trained.tokens,
      loss: mean(trained),
      perplexity: perplexityOf(trained.loss, trained.tokens),
      baseLoss: mean(base),
      basePerplexity: perplexityOf(base.loss, base.tokens),
      exactMatch: format === "text" ? null : { matched, total: pairs.length },
      samples,
    };
  } finally {
    await model.dispose();
  }
}
