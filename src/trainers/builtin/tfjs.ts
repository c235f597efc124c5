import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
// tfjs-core's Node bundle ships no gradient functions; they live only in its ES-module sources,
// which Node cannot load by package name (extensionless imports). A relative path makes
// esbuild and vitest bundle them; they register into tfjs's global gradient registry.
import "../../../node_modules/@tensorflow/tfjs-core/dist/register_all_gradients";
import { registerFastMatMul } from "./matmul";

/**
 * Selects the pure-JavaScript CPU backend. Production mode skips per-op NaN checks and
 * silences the "install tfjs-node" banner, which would be noise in every training log.
 */
export async function selectCpuBackend(): Promise<void> {
  tf.enableProdMode();
  await tf.setBackend("cpu");
  registerFastMatMul();
}
