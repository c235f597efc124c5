import type { Command } from "commander";
import { describeDevices, summarizePreflight } from "../trainers/hf-peft/preflight-summary";
import { setupHfPeft } from "../trainers/hf-peft/setup";
import { type SetupRecord, setupRecordPath } from "../trainers/hf-peft/setup-record";
import { home } from "./client";
import { print } from "./format";

const collect = (value: string, previous: string[]) => [...previous, value];

/** `studio setup hf-peft`: what the Hugging Face PEFT trainer needs, once per machine. */
export function registerSetupCommands(setup: Command) {
  setup
    .command("hf-peft")
    .description(
      "create a Python environment with the hf-peft trainer's pinned packages (in STUDIO_HOME) and record it for the studio",
    )
    .option("--python <interpreter>", "the Python to make the environment from", "python3")
    .option(
      "--venv <dir>",
      "where the environment goes (default: STUDIO_HOME/venvs/hf-peft-<hash>)",
    )
    .option(
      "--torch <pin>",
      "another torch build, e.g. torch==2.13.0 (CUDA) instead of the CPU build",
    )
    .option("--index-url <url>", "install from this index only (repeat for more)", collect, [])
    .option(
      "--find-links <path>",
      "also install from this folder of wheels (repeat for more)",
      collect,
      [],
    )
    .option("--quiet", "show pip's output only if it fails")
    .option("--json", "machine-readable output")
    .action(
      async (opts: {
        python: string;
        venv?: string;
        torch?: string;
        indexUrl: string[];
        findLinks: string[];
        quiet?: boolean;
        json?: boolean;
      }) => {
        const studioHome = home();
        const record = await setupHfPeft({
          home: studioHome,
          basePython: opts.python,
          venv: opts.venv,
          torch: opts.torch,
          indexUrls: opts.indexUrl,
          findLinks: opts.findLinks,
          quiet: opts.quiet,
          log: (line) => console.error(`setup: ${line}`),
        });
        print(opts.json ?? false, record, () => describeSetup(record, setupRecordPath(studioHome)));
      },
    );
}

function describeSetup(record: SetupRecord, recordPath: string): string {
  const summary = summarizePreflight(record.preflight.result.details);
  const { torch, transformers, peft, accelerate } = summary.packages;
  return [
    "hf-peft trainer: ready",
    `  python:      ${record.python} (Python ${summary.python ?? "?"})`,
    `  torch:       ${torch ?? "?"}, ${describeDevices(summary)}`,
    `  packages:    transformers ${transformers ?? "?"}, peft ${peft ?? "?"}, accelerate ${accelerate ?? "?"}`,
    `  recorded in: ${recordPath} (the studio runs the trainer with this interpreter; STUDIO_PYTHON overrides it)`,
  ].join("\n");
}
