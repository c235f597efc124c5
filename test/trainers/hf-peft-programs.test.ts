import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adapterConfigJson } from "../../src/trainers/builtin/lora";
import { Rng } from "../../src/trainers/builtin/rng";
import { type TensorMap, writeSafetensors } from "../../src/trainers/builtin/safetensors";
import { rowToText } from "../../src/trainers/dataset";
import {
  EVAL_RECORD_VERSION,
  type EvalRecord,
  evalRecordPath,
  parseEvalRecord,
} from "../../src/trainers/evaluate/eval-record";
import { instructionPair } from "../../src/trainers/evaluate/instruction-pairs";
import { hfPeftScriptPath } from "../../src/trainers/launch";
import { hyperparametersSchema } from "../../src/trainers/protocol";
import { hfPeftEnvironment, ONE_THREAD } from "../helpers/hf-peft";
import { waitFor } from "../helpers/wait";

const DIST = join(import.meta.dirname, "../../dist");
const SERVE = hfPeftScriptPath(DIST, "serve.py");
const EVALUATE = hfPeftScriptPath(DIST, "evaluate.py");
const SAMPLE_ROWS = join(import.meta.dirname, "../../data/sample.jsonl");

/**
 * The hf-peft trainer's programs that use a trained adapter, each run for real on the tiny Llama
 * of the global setup with an adapter of random weights (lora_B not zero, so the adapter moves
 * the output): serve.py driven through its protocol on stdin and stdout, and evaluate.py through
 * the evaluator (dist/evaluator.js), as the studio runs them.
 */
describe("hf-peft's generation server and evaluation", () => {
  const env = hfPeftEnvironment();
  const root = mkdtempSync(join(tmpdir(), "hf-peft-programs-"));
  const taskDir = join(root, "task");
  const rows = readFileSync(SAMPLE_ROWS, "utf8").trim().split("\n");

  beforeAll(async () => {
    mkdirSync(taskDir, { recursive: true });
    const config = {
      taskId: "t",
      attempt: 1,
      trainer: "hf-peft",
      model: env.model,
      dataset: { path: SAMPLE_ROWS, format: "alpaca" },
      taskDir,
      hyperparameters: hyperparametersSchema.parse({ maxLength: 64, batchSize: 2 }),
    };
    writeFileSync(join(taskDir, "config.json"), JSON.stringify(config));
    await writeRandomAdapter(taskDir, env.model);
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it("serve.py streams each request token by token, in turns; a seed decides the text; bad requests are refused by name and the server serves on", async () => {
    const server = new ServeProcess(env.python, taskDir);
    try {
      expect(await server.next()).toEqual({ event: "ready", version: 1 });
      const greedy = { maxNewTokens: 12, temperature: 0, topP: 1, seed: 0 };
      const prompt = "### Instruction:\nName a colour.\n### Response:\n";
      // A long request is streaming when a short one comes: they take turns, a token each, so
      // the short one ends first.
      server.send({ id: "base", side: "base", prompt, ...greedy, maxNewTokens: 48 });
      const first = await server.next();
      expect(first).toMatchObject({ event: "token", id: "base" });
      server.send({ id: "adapter", side: "adapter", prompt, ...greedy });
      const both = await server.until(["base", "adapter"]);
      expect(both.endOrder).toEqual(["adapter", "base"]);
      expect(both.ends).toEqual({
        base: { event: "done", id: "base", tokens: 48 },
        adapter: { event: "done", id: "adapter", tokens: 12 },
      });
      expect(both.pieces.adapter!.length).toBeGreaterThan(1);
      // The base side runs with the adapter disabled: the same prompt, other text.
      const base = first.text! + both.text.base!;
      expect(base.startsWith(both.text.adapter!)).toBe(false);

      const sampled = { maxNewTokens: 16, temperature: 1, topP: 0.95 };
      const draw = async (id: string, seed: number) => {
        server.send({ id, side: "adapter", prompt, ...sampled, seed });
        return (await server.until([id])).text[id]!;
      };
      const drawn = await draw("s1", 7);
      expect(await draw("s2", 7)).toBe(drawn);
      expect(await draw("s3", 8)).not.toBe(drawn);

      // Bad lines and bad requests: an error each, naming what is wrong, for that request only.
      server.sendLine("not json");
      expect(await server.next()).toEqual({
        event: "error",
        id: "",
        message: "a request line is not JSON",
      });
      server.sendLine("[1, 2]");
      expect(await server.next()).toMatchObject({ message: "a request line is not a JSON object" });
      server.send({ id: "x1", side: "adapter", ...greedy });
      expect(await server.next()).toEqual({
        event: "error",
        id: "x1",
        message: 'the request has no "prompt" (a string)',
      });
      server.send({ id: "x2", side: "adapter", prompt, ...greedy, temperature: "hot" });
      expect(await server.next()).toEqual({
        event: "error",
        id: "x2",
        message: '"temperature" must be a number of at least 0, not "hot"',
      });
      server.send({ id: "x3", side: "sideways", prompt, ...greedy });
      expect(await server.next()).toMatchObject({
        id: "x3",
        message: '"side" must be "base" or "adapter", not "sideways"',
      });
      server.send({ id: "x4", side: "base", prompt: "word ".repeat(300), ...greedy });
      expect(await server.next()).toMatchObject({
        id: "x4",
        message: expect.stringMatching(/^the prompt is \d+ tokens; this model reads at most 255$/),
      });
      // A request cancelled midway ends with "cancelled"; the server still serves the next.
      server.send({ id: "long", side: "adapter", prompt, ...greedy, maxNewTokens: 200 });
      await server.next();
      server.send({ cancel: "long" });
      expect((await server.until(["long"])).ends.long).toMatchObject({ message: "cancelled" });
      server.send({ id: "after", side: "adapter", prompt, ...greedy });
      expect((await server.until(["after"])).text.after).toBe(both.text.adapter);
      expect(await server.close()).toBe(0);
    } finally {
      server.kill();
    }
  }, 120_000);

  it("keeps evaluate.py's answer cut identical to instructionPair", () => {
    // Real Python, no packages needed: instruction_pair is imported from evaluate.py and compared.
    const cases = [
      ["alpaca", "### Instruction:\nAdd.\n### Input:\n1 + 2\n### Response:\n3"],
      ["alpaca", "### Instruction:\nquote ### Response:\n inside\n### Response:\nlast"],
      ["alpaca", "no marker at all"],
      ["chat", "<|user|>\n2+2?\n<|assistant|>\n4"],
      ["chat", "<|user|>\nhi\n<|assistant|>\nhello\n<|user|>\nbye"],
      ["chat", "<|system|>\nbe brief\n<|assistant|>\nok\n<|system|>\nx\n<|assistant|>\ndone"],
      ["text", "### Response:\nplain text has no answer"],
    ] as const;
    const code = [
      "import importlib.util, json, sys",
      "spec = importlib.util.spec_from_file_location('evaluate', sys.argv[1])",
      "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)",
      "print(json.dumps([m.instruction_pair(t, f) for f, t in json.loads(sys.argv[2])]))",
    ].join("\n");
    const out = execFileSync("python3", ["-c", code, EVALUATE, JSON.stringify(cases)], {
      encoding: "utf8",
    });
    expect(JSON.parse(out)).toEqual(
      cases.map(([format, text]) => {
        const pair = instructionPair(text, format);
        return pair && [pair.prompt, pair.expected];
      }),
    );
  });

  it("evaluate.py, run by the evaluator, records the adapter's and the base's loss, perplexity, exact match and sample answers (a checkpoint's kept weights)", async () => {
    const heldOut = join(root, "held-out.jsonl");
    writeFileSync(heldOut, `${rows.slice(195, 199).join("\n")}\n`);
    // As an evaluation set scores a checkpoint the run has removed since: from its kept weights.
    const kept = join(taskDir, "eval", "checkpoints", "checkpoint-2");
    mkdirSync(kept, { recursive: true });
    for (const file of ["adapter_model.safetensors", "adapter_config.json"]) {
      linkSync(join(taskDir, file), join(kept, file));
    }
    const record: EvalRecord = {
      version: EVAL_RECORD_VERSION,
      id: "00000000000000a1",
      origin: "standing",
      state: "running",
      trainer: "hf-peft",
      readFrom: "eval/checkpoints/checkpoint-2",
      tries: 1,
      niceness: null,
      source: { path: "checkpoints/checkpoint-2", step: 2 },
      dataset: { id: "held", name: "held-out.jsonl", path: heldOut, format: "alpaca" },
      python: env.python,
      process: null,
      startedAt: new Date().toISOString(),
      finishedAt: null,
      results: null,
      reason: null,
    };
    writeFileSync(evalRecordPath(taskDir, record.id), JSON.stringify(record));
    const evaluator = spawn(
      process.execPath,
      [join(DIST, "evaluator.js"), "--task-dir", taskDir, "--eval-id", record.id],
      { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...ONE_THREAD } },
    );
    let output = "";
    evaluator.stdout.on("data", (c) => (output += c));
    evaluator.stderr.on("data", (c) => (output += c));
    const code = await new Promise((done) => evaluator.on("close", done));
    expect(code, output).toBe(0);
    const ended = parseEvalRecord(readFileSync(evalRecordPath(taskDir, record.id), "utf8"));
    expect(ended).toMatchObject({ state: "done", reason: null, process: { pid: evaluator.pid } });
    const results = ended.results!;
    expect(results.rows).toBe(4);
    expect(results.tokens).toBeGreaterThan(4 * 8);
    expect(results.perplexity).toBeCloseTo(Math.exp(results.loss!), 6);
    expect(results.basePerplexity).toBeCloseTo(Math.exp(results.baseLoss!), 6);
    // The adapter is applied on one side and disabled on the other.
    expect(Math.abs(results.loss! - results.baseLoss!)).toBeGreaterThan(1e-3);
    expect(results.exactMatch).toEqual({ matched: expect.any(Number), total: 4 });
    expect(results.samples).toHaveLength(3);
    // Each sample's prompt is its row's training text up to the answer; expected is the answer.
    const pairs = rows
      .slice(195, 198)
      .map((r) => instructionPair(rowToText(JSON.parse(r), "alpaca"), "alpaca"));
    expect(results.samples.map(({ prompt, expected }) => ({ prompt, expected }))).toEqual(pairs);
    expect(output).toContain(`with the adapter of ${kept} (8 LoRA tensors)`);
    expect(output).toContain("(alpaca), one thread");
  }, 120_000);
});

/**
 * An adapter as peft saves one for the tiny Llama (r 4 on q_proj and v_proj of its 2 layers),
 * with random weights in both matrices, written with the studio's safetensors writer.
 */
async function writeRandomAdapter(dir: string, model: string) {
  const base = JSON.parse(readFileSync(join(model, "config.json"), "utf8")) as {
    hidden_size: number;
    num_hidden_layers: number;
  };
  const rank = 4;
  const rng = new Rng(3);
  const random = (shape: number[], scale: number) => ({
    shape,
    data: Float32Array.from({ length: shape[0]! * shape[1]! }, () => rng.normal() * scale),
  });
  const tensors: TensorMap = new Map();
  for (let layer = 0; layer < base.num_hidden_layers; layer++) {
    for (const projection of ["q_proj", "v_proj"]) {
      const name = `base_model.model.model.layers.${layer}.self_attn.${projection}`;
      tensors.set(`${name}.lora_A.weight`, random([rank, base.hidden_size], 0.5));
      tensors.set(`${name}.lora_B.weight`, random([base.hidden_size, rank], 0.5));
    }
  }
  await writeSafetensors(join(dir, "adapter_model.safetensors"), tensors, { format: "pt" });
  const settings = { rank, alpha: 8, dropout: 0, targetModules: ["q_proj", "v_proj"] };
  writeFileSync(join(dir, "adapter_config.json"), adapterConfigJson(settings, model));
}

type Message = { event: string; id?: string; text?: string; message?: string; tokens?: number };

/** serve.py on stdin and stdout: one JSON object a line each way. */
class ServeProcess {
  private readonly child: ChildProcess;
  private readonly messages: Message[] = [];
  private stderr = "";
  private exited: number | null = null;

  constructor(python: string, taskDir: string) {
    this.child = spawn(python, [SERVE, "--task-dir", taskDir, "--source", taskDir], {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, ...ONE_THREAD, HF_HUB_OFFLINE: "1" },
    });
    createInterface({ input: this.child.stdout! }).on("line", (line) =>
      this.messages.push(JSON.parse(line) as Message),
    );
    this.child.stderr!.on("data", (chunk) => (this.stderr += chunk));
    this.child.on("close", (code) => (this.exited = code ?? -1));
  }

  sendLine(line: string) {
    this.child.stdin!.write(`${line}\n`);
  }

  send(request: Record<string, unknown>) {
    this.sendLine(JSON.stringify(request));
  }

  async next(): Promise<Message> {
    await waitFor(
      `a message from serve.py (stderr: ${this.stderr.slice(-500)})`,
      () => this.messages.length > 0 || this.exited !== null,
      60_000,
      5,
    );
    const message = this.messages.shift();
    if (!message) throw new Error(`serve.py exited ${this.exited}: ${this.stderr.slice(-2000)}`);
    return message;
  }

  /** Messages until each of `ids` has ended: the order tokens came in, each text, each end. */
  async until(ids: string[]) {
    const order: string[] = [];
    const pieces: Record<string, string[]> = Object.fromEntries(ids.map((id) => [id, []]));
    const ends: Record<string, Message> = {};
    const endOrder: string[] = [];
    while (ids.some((id) => !ends[id])) {
      const message = await this.next();
      const id = message.id ?? "";
      if (!ids.includes(id)) throw new Error(`unexpected message ${JSON.stringify(message)}`);
      if (message.event === "token") {
        order.push(id);
        pieces[id]!.push(message.text!);
      } else {
        ends[id] = message;
        endOrder.push(id);
      }
    }
    const text = Object.fromEntries(ids.map((id) => [id, pieces[id]!.join("")]));
    return { order, pieces, ends, endOrder, text };
  }

  /** Closing stdin ends the server; its exit code. */
  async close(): Promise<number> {
    this.child.stdin!.end();
    await waitFor("serve.py to exit", () => this.exited !== null, 30_000, 10);
    return this.exited!;
  }

  kill() {
    if (this.exited === null) this.child.kill("SIGKILL");
  }
}
