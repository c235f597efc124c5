import { createInterface } from "node:readline";
import {
  type GenerationRequest,
  generationRequestSchema,
  PLAYGROUND_PROTOCOL_VERSION,
  type ServerMessage,
} from "../playground/protocol";
import { generateText } from "./generate";
import { type InferenceModel, loadInferenceModel } from "./inference";

/**
 * `builtin-trainer serve --task-dir <dir> --source <dir>`: the generation server of the
 * playground protocol (src/trainers/playground/protocol.ts). It loads the base and the trained
 * weights once, then answers requests from stdin until stdin closes. Active requests take turns,
 * a token each, and the event loop runs between tokens, so a new request or a cancel is read
 * while others generate.
 */

function send(message: ServerMessage) {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

interface Active {
  id: string;
  tokens: number;
  pieces: Generator<string>;
}

export async function serve(taskDir: string, source: string): Promise<number> {
  let model: InferenceModel;
  try {
    model = await loadInferenceModel(taskDir, source);
  } catch (err) {
    send({ event: "fatal", message: `cannot load the model: ${(err as Error).message}` });
    return 1;
  }
  send({ event: "ready", version: PLAYGROUND_PROTOCOL_VERSION });
  const active: Active[] = [];
  let pumping = false;
  let closed = false;
  let finish: () => void = () => {};
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });

  const start = (request: GenerationRequest) => {
    const { id, side, prompt, ...settings } = request;
    active.push({ id, tokens: 0, pieces: generateText(model, side, prompt, settings) });
    if (!pumping) {
      pumping = true;
      setImmediate(pump);
    }
  };
  // One token of each active request, then back to the event loop.
  const pump = () => {
    for (const entry of [...active]) {
      try {
        const next = entry.pieces.next();
        if (next.done) {
          send({ event: "done", id: entry.id, tokens: entry.tokens });
          active.splice(active.indexOf(entry), 1);
        } else {
          entry.tokens++;
          send({ event: "token", id: entry.id, text: next.value });
        }
      } catch (err) {
        send({ event: "error", id: entry.id, message: (err as Error).message });
        active.splice(active.indexOf(entry), 1);
      }
    }
    if (active.length > 0) setImmediate(pump);
    else {
      pumping = false;
      if (closed) finish();
    }
  };

  const lines = createInterface({ input: process.stdin });
  lines.on("line", (line) => {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      send({ event: "error", id: "", message: "a request line is not JSON" });
      return;
    }
    const cancel = (value as { cancel?: unknown } | null)?.cancel;
    if (typeof cancel === "string") {
      const at = active.findIndex((a) => a.id === cancel);
      if (at >= 0) {
        active.splice(at, 1);
        send({ event: "error", id: cancel, message: "cancelled" });
      }
      return;
    }
    const parsed = generationRequestSchema.safeParse(value);
    if (!parsed.success) {
      const id = (value as { id?: unknown } | null)?.id;
      send({
        event: "error",
        id: typeof id === "string" ? id : "",
        message: `bad request: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`,
      });
      return;
    }
    start(parsed.data);
  });
  lines.on("close", () => {
    closed = true;
    if (!pumping) finish();
  });
  await finished;
  await model.dispose();
  return 0;
}
