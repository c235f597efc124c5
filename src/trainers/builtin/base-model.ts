import {
  initWeights,
  type ModelConfig,
  modelConfigSchema,
  TINY_BASE_SEED,
  TINY_CONFIG,
  weightShapes,
} from "./model";
import { readSafetensors, type TensorMap, writeSafetensors } from "./safetensors";

/** A base model is "builtin:tiny" (seeded init) or a .safetensors file that carries its architecture. */

export const TINY_MODEL_ID = "builtin:tiny";
const CONFIG_METADATA_KEY = "builtin_model_config";

export interface BaseModel {
  config: ModelConfig;
  weights: TensorMap;
}

export async function loadBaseModel(model: string): Promise<BaseModel> {
  if (model === TINY_MODEL_ID) {
    return { config: TINY_CONFIG, weights: initWeights(TINY_CONFIG, TINY_BASE_SEED) };
  }
  if (!model.endsWith(".safetensors")) {
    throw new Error(
      `the built-in trainer needs "${TINY_MODEL_ID}" or a .safetensors file, got ${model}`,
    );
  }
  const file = await readSafetensors(model);
  const rawConfig = file.metadata[CONFIG_METADATA_KEY];
  if (!rawConfig) {
    throw new Error(
      `${model} has no ${CONFIG_METADATA_KEY} metadata; was it written by this trainer?`,
    );
  }
  const config = modelConfigSchema.parse(JSON.parse(rawConfig));
  for (const [name, shape] of weightShapes(config)) {
    const found = file.tensors.get(name);
    if (!found || found.shape.join() !== shape.join()) {
      throw new Error(`${model}: weight ${name} is missing or has the wrong shape`);
    }
  }
  return { config, weights: file.tensors };
}

export async function saveModel(path: string, model: BaseModel): Promise<void> {
  await writeSafetensors(path, model.weights, {
    format: "pt",
    [CONFIG_METADATA_KEY]: JSON.stringify(model.config),
  });
}
