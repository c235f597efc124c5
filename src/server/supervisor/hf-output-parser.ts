import { MAX_INT4 } from "../../trainers/protocol";
import { lastSegment } from "../logs/log-cursor";

/**
 * Reads what an unmodified Hugging Face Trainer prints into training.log, so that a custom script
 * shows progress without writing progress.jsonl. Two shapes matter:
 *
 * - The logs dict, printed with Python's `str(dict)` once per logging step, per evaluation and at
 *   the end: `{'loss': 0.5, 'grad_norm': 1.2, 'learning_rate': 0.0002, 'epoch': 0.5}`. Recent
 *   versions print floats as quoted strings formatted with `.4g` (`{'loss': '0.5123', ...}`); older
 *   ones print raw floats, `np.float64(0.5)` with numpy 2, or `tensor(0.5)`. Read by a small
 *   tokenizer for exactly that grammar, never by evaluating anything.
 * - tqdm bars, redrawn with "\r": ` 50%|█████     | 150/300 [01:23<01:23,  1.80it/s]`.
 *
 * Whatever lands on a line is read: a dict printed right after an unfinished bar (a plain `print`
 * while a bar is active), several dicts, bars of several ranks drawn into one line, ANSI cursor
 * moves. Every dict a person can see in the line is returned, wherever it stands.
 *
 * Which dicts count (anything else, such as a user's own print of a dict, is left out):
 * - train-summary: has `train_runtime` (the dict Trainer.train() logs last);
 * - eval-log: has `eval_loss` or `eval_runtime`, and every key is `eval_*`, `epoch` or `step`;
 * - train-log: has `loss` and `epoch` (Trainer.log() always adds `epoch` during training);
 * and every value must be a number (or a string that is one), so `{'loss': 'mse', 'epoch': 3}`
 * is a user's print, not a training log.
 */

export type HfMetrics = Record<string, number>;

export type HfTrainLog = {
  kind: "train-log";
  loss: number;
  epoch: number;
  learningRate: number | null;
  gradNorm: number | null;
  /** Every key as printed (num_tokens, mean_token_accuracy, ... from TRL too). */
  metrics: HfMetrics;
};

export type HfEvalLog = {
  kind: "eval-log";
  evalLoss: number | null;
  epoch: number | null;
  metrics: HfMetrics;
};

export type HfTrainSummary = {
  kind: "train-summary";
  trainRuntimeSeconds: number;
  trainLoss: number | null;
  epoch: number | null;
  metrics: HfMetrics;
};

export type TqdmBar = {
  kind: "tqdm";
  /** The bar's description before ": " ("Map", "Tokenizing"), "" when it has none. */
  label: string;
  percent: number;
  step: number;
  total: number;
  elapsedSeconds: number;
  /** null while tqdm prints "?" */
  remainingSeconds: number | null;
  /** Items per second whichever way tqdm printed it (it/s or s/it); null while it prints "?". */
  rate: number | null;
  /** "it" for Trainer's bars; datasets prints "examples" or "ba". */
  unit: string;
};

export type ParsedHfLine = HfTrainLog | HfEvalLog | HfTrainSummary | TqdmBar;

/**
 * The training bar is the one Trainer draws: no label and the unit "it". Labelled bars ("Map: ...",
 * "Generating train split: ...") and bars counting other units are data loading. Trainer's
 * evaluation bar also has no label; it is told apart by its total (see progress-state).
 */
export function isTrainingBar(bar: TqdmBar): boolean {
  return bar.label === "" && bar.unit === "it";
}

/** What a terminal shows of the line (its last "\r" segment): the last dict in it, else its bar. */
export function parseHfLine(text: string): ParsedHfLine | null {
  return segmentItems(lastSegment(text)).at(-1) ?? null;
}

/**
 * Everything useful in one complete line, in the order it was printed. Each logs dict comes after
 * the bars drawn before it (a dict has no step; the training bar before it gives one), and the
 * line's last bars come last. Of the many redraws of a bar only the last is kept; when the line
 * holds copies of one bar (same label, unit and total) drawn by several ranks, the one furthest
 * on, so the step never steps back within a line. Trainer prints its dict with tqdm.write(),
 * which clears the bar (a segment of spaces), prints the dict and a newline; a script's own
 * `print` puts the dict straight after the bar's last frame.
 */
export function parseHfOutput(text: string): ParsedHfLine[] {
  // Most lines carry neither a bar ("%|") nor a dict ("{"): two scans, and no split or regex.
  if (!text.includes("%") && !text.includes("{")) return [];
  const out: ParsedHfLine[] = [];
  let bars: TqdmBar[] = [];
  for (const segment of text.split("\r")) {
    for (const item of segmentItems(segment)) {
      if (item.kind === "tqdm") {
        const copy = bars.find((bar) => sameBar(bar, item));
        const ahead = copy && copy.step > item.step ? copy : item;
        bars = [...bars.filter((bar) => !sameBar(bar, item)), ahead];
      } else {
        out.push(...bars, item);
        bars = [];
      }
    }
  }
  out.push(...bars);
  return out;
}

function sameBar(a: TqdmBar, b: TqdmBar): boolean {
  return a.label === b.label && a.unit === b.unit && a.total === b.total;
}

// tqdm moves the cursor with ANSI escapes when it draws nested bars (Trainer's evaluation bar).
const ANSI_ESCAPE = new RegExp(`${String.fromCharCode(0x1b)}\\[[0-9;?]*[A-Za-z]`, "g");

/**
 * Tries to read a dict at no more than this many "{" of one segment: a line is at most 16 KiB,
 * and text full of braces must not cost a read at every one of them.
 */
const MAX_DICT_STARTS = 64;

/** A bar at the start of the segment, then every logs dict in the rest of it, in order. */
function segmentItems(raw: string): ParsedHfLine[] {
  const segment = raw.includes("\u001b") ? raw.replace(ANSI_ESCAPE, "") : raw;
  const items: ParsedHfLine[] = [];
  let from = 0;
  if (segment.includes("%|")) {
    const bar = parseTqdm(segment);
    if (bar) {
      items.push(bar.bar);
      from = bar.end;
    }
  }
  let starts = 0;
  for (let at = segment.indexOf("{", from); at >= 0 && starts < MAX_DICT_STARTS; starts++) {
    const read = readPythonDict(segment, at);
    const parsed = read ? classifyDict(read.dict) : null;
    if (parsed) items.push(parsed);
    at = segment.indexOf("{", read && parsed ? read.end : at + 1);
  }
  return items;
}

function classifyDict(dict: Map<string, PythonValue>): ParsedHfLine | null {
  if (dict.size === 0) return null;
  const metrics: HfMetrics = {};
  for (const [key, value] of dict) {
    const number = toNumber(value);
    if (number === null) return null;
    metrics[key] = number;
  }
  const get = (key: string) => (key in metrics ? metrics[key]! : null);
  if ("train_runtime" in metrics) {
    return {
      kind: "train-summary",
      trainRuntimeSeconds: metrics.train_runtime!,
      trainLoss: get("train_loss"),
      epoch: get("epoch"),
      metrics,
    };
  }
  const keys = Object.keys(metrics);
  if (keys.some((k) => k === "eval_loss" || k === "eval_runtime")) {
    const onlyEval = keys.every((k) => k.startsWith("eval_") || k === "epoch" || k === "step");
    if (!onlyEval) return null;
    return { kind: "eval-log", evalLoss: get("eval_loss"), epoch: get("epoch"), metrics };
  }
  if ("loss" in metrics && "epoch" in metrics) {
    return {
      kind: "train-log",
      loss: metrics.loss!,
      epoch: metrics.epoch!,
      learningRate: get("learning_rate"),
      gradNorm: get("grad_norm"),
      metrics,
    };
  }
  return null;
}

// tqdm's format_meter: "{desc}: {percentage:3.0f}%|{bar}| {n}/{total} [{elapsed}<{remaining}, {rate}{postfix}]",
// at the start of a segment; whatever follows it (a printed dict, another rank's text) is the rest.
const TQDM =
  /^\s*(?:(.*?): *)?(\d{1,3})%\|[^|]*\| *(\d+)\/(\d+) \[(\d+(?::\d\d){1,2})<(\?|\d+(?::\d\d){1,2}), *([^,\]]*)(?:,[^\]]*)?\]/;
const RATE_PER_SECOND = /^(\d+(?:\.\d+)?|\?) ?([A-Za-z ]*?)\/s$/;
const SECONDS_PER_ITEM = /^(\d+(?:\.\d+)?)s\/ ?([A-Za-z ]*)$/;

/** The bar that starts the segment, and where it ends. */
function parseTqdm(segment: string): { bar: TqdmBar; end: number } | null {
  const match = TQDM.exec(segment);
  if (!match) return null;
  const [, label = "", percent, step, total, elapsed, remaining, rateText] = match;
  const rate = parseRate(rateText!.trim());
  if (!rate) return null;
  // Steps are stored as PostgreSQL integers: a bar counting past that is not Trainer's.
  const n = Number(step);
  const of = Number(total);
  if (n > MAX_INT4 || of > MAX_INT4) return null;
  const elapsedSeconds = parseClock(elapsed!);
  const remainingSeconds = remaining === "?" ? null : parseClock(remaining!);
  if (!Number.isFinite(elapsedSeconds) || !Number.isFinite(remainingSeconds ?? 0)) return null;
  const bar: TqdmBar = {
    kind: "tqdm",
    label: label.trim(),
    percent: Number(percent),
    step: n,
    total: of,
    elapsedSeconds,
    remainingSeconds,
    rate: rate.rate,
    unit: rate.unit,
  };
  return { bar, end: match[0].length };
}

function parseRate(text: string): { rate: number | null; unit: string } | null {
  const perSecond = RATE_PER_SECOND.exec(text);
  if (perSecond) {
    const value = perSecond[1] === "?" ? null : Number(perSecond[1]);
    const rate = value !== null && Number.isFinite(value) ? value : null;
    return { rate, unit: perSecond[2]!.trim() };
  }
  const perItem = SECONDS_PER_ITEM.exec(text);
  if (perItem) {
    const seconds = Number(perItem[1]);
    const rate = seconds > 0 && Number.isFinite(1 / seconds) ? 1 / seconds : null;
    return { rate, unit: perItem[2]!.trim() };
  }
  return null;
}

/** "01:23" or "1:01:23" to seconds. */
function parseClock(text: string): number {
  return text.split(":").reduce((total, part) => total * 60 + Number(part), 0);
}

// ---- A tokenizer for the subset of Python literal syntax that `str(dict)` of logs produces. ----

type PythonValue = number | string | boolean | null;

const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const NUMBER_AT = /[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/y;
const NAME_AT = /[A-Za-z_][A-Za-z0-9_.]*/y;
const NAMED_NUMBERS: Record<string, number> = {
  nan: Number.NaN,
  inf: Number.POSITIVE_INFINITY,
  "-inf": Number.NEGATIVE_INFINITY,
};

function toNumber(value: PythonValue): number | null {
  if (typeof value === "number") return value;
  if (typeof value !== "string") return null;
  const text = value.trim();
  if (NUMBER.test(text)) return Number(text);
  return text.toLowerCase() in NAMED_NUMBERS ? NAMED_NUMBERS[text.toLowerCase()]! : null;
}

/** `{'key': value, ...}` starting at `start`: the map and where it ends, or null. */
function readPythonDict(
  text: string,
  start: number,
): { dict: Map<string, PythonValue>; end: number } | null {
  const reader = new Reader(text, start);
  const dict = new Map<string, PythonValue>();
  if (!reader.take("{")) return null;
  if (!reader.take("}")) {
    do {
      if (reader.peek() === "}") break; // trailing comma
      const key = reader.string();
      if (key === null || !reader.take(":")) return null;
      const value = reader.value();
      if (value === undefined) return null;
      dict.set(key, value);
    } while (reader.take(","));
    if (!reader.take("}")) return null;
  }
  return { dict, end: reader.offset() };
}

class Reader {
  constructor(
    private readonly text: string,
    private position: number,
  ) {}

  offset(): number {
    return this.position;
  }

  peek(): string {
    this.skipSpaces();
    return this.text[this.position] ?? "";
  }

  take(token: string): boolean {
    this.skipSpaces();
    if (!this.text.startsWith(token, this.position)) return false;
    this.position += token.length;
    return true;
  }

  /** A value, or undefined when none can be read. */
  value(): PythonValue | undefined {
    const next = this.peek();
    if (next === "'" || next === '"') return this.string() ?? undefined;
    const number = this.match(NUMBER_AT);
    if (number !== null) return Number(number);
    const negative = this.take("-");
    const name = this.match(NAME_AT);
    if (name === null) return undefined;
    if (this.peek() === "(") return negative ? undefined : this.call();
    if (name === "nan" || name === "inf")
      return negative ? -NAMED_NUMBERS[name]! : NAMED_NUMBERS[name]!;
    if (negative) return undefined;
    if (name === "True" || name === "False") return name === "True";
    if (name === "None") return null;
    return undefined;
  }

  /** A quoted string with Python's escapes for quotes and backslashes. */
  string(): string | null {
    const quote = this.peek();
    if (quote !== "'" && quote !== '"') return null;
    let result = "";
    for (let i = this.position + 1; i < this.text.length; i++) {
      const char = this.text[i]!;
      if (char === quote) {
        this.position = i + 1;
        return result;
      }
      if (char === "\\" && i + 1 < this.text.length) {
        i++;
        result += this.text[i];
      } else {
        result += char;
      }
    }
    return null;
  }

  /**
   * A wrapper call such as `np.float64(0.5)` or `tensor(0.5, device='cuda:0', grad_fn=<AddBackward0>)`:
   * its first argument is the value; keyword arguments are skipped.
   */
  private call(): PythonValue | undefined {
    this.take("(");
    const value = this.value();
    if (value === undefined) return undefined;
    while (this.take(",")) {
      if (this.match(NAME_AT) === null || !this.take("=")) return undefined;
      if (this.peek() === "<") {
        const close = this.text.indexOf(">", this.position);
        if (close < 0) return undefined;
        this.position = close + 1;
      } else if (this.value() === undefined) {
        return undefined;
      }
    }
    return this.take(")") ? value : undefined;
  }

  private match(pattern: RegExp): string | null {
    this.skipSpaces();
    pattern.lastIndex = this.position;
    const found = pattern.exec(this.text);
    if (!found) return null;
    this.position = pattern.lastIndex;
    return found[0];
  }

  private skipSpaces(): void {
    while (this.position < this.text.length && /\s/.test(this.text[this.position]!))
      this.position++;
  }
}
