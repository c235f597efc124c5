import { describe, expect, it } from "vitest";
import { loadEnv } from "../../src/server/env";
import { refusedSbatchArg } from "../../src/server/sbatch-options";

const extra = (args: string) => () => loadEnv({ STUDIO_SLURM_EXTRA_ARGS: args });

describe("STUDIO_SLURM_EXTRA_ARGS as sbatch reads it (getopt_long takes unambiguous prefixes)", () => {
  it("refuses every abbreviation of an option the studio sets itself", () => {
    const cases: [string, RegExp][] = [
      ["--outp=/tmp/x", /--outp is sbatch's abbreviation of --output/],
      ["--output=/tmp/x", /--output is set by the studio itself/],
      ["--chdi=/", /--chdi is sbatch's abbreviation of --chdir/],
      ["--ch=/", /--ch is sbatch's abbreviation of --chdir/],
      ["--job-nam=x", /--job-nam is sbatch's abbreviation of --job-name/],
      ["--job=x", /--job is sbatch's abbreviation of --job-name/],
      ["--wra=id", /--wra is sbatch's abbreviation of --wrap/],
      ["--wr=id", /--wr is sbatch's abbreviation of --wrap/],
      ["--erro=/tmp/e", /--erro is sbatch's abbreviation of --error/],
      ["--expor=NONE", /could read as --export, --export-file/],
      ["--export-f=/tmp/env", /--export-f is sbatch's abbreviation of --export-file/],
      ["--parsa", /--parsa is sbatch's abbreviation of --parsable/],
      ["--arr=1-100", /--arr is sbatch's abbreviation of --array/],
      ["--no-req", /--no-req is sbatch's abbreviation of --no-requeue/],
      ["--req", /--req is sbatch's abbreviation of --requeue/],
      ["--op=truncate", /--op is sbatch's abbreviation of --open-mode/],
      ["--inp=/dev/zero", /--inp is sbatch's abbreviation of --input/],
      ["--o=/tmp/x", /could read as --output, --open-mode/],
      ["--e=/tmp/x", /could read as --error, --export, --export-file/],
      ["--w=x", /could read as --wrap, --wait/],
      ["--test-o", /--test-o is sbatch's abbreviation of --test-only/],
    ];
    for (const [arg, reason] of cases) {
      expect(refusedSbatchArg(arg), arg).toMatch(reason);
      expect(extra(`--account=ml ${arg}`), arg).toThrow(reason);
    }
  });

  it("refuses short options, naming the refused option each one is", () => {
    const cases: [string, RegExp][] = [
      ["-o/tmp/x", /-o is sbatch's short form of --output/],
      ["-D/", /-D is sbatch's short form of --chdir/],
      ["-Jx", /-J is sbatch's short form of --job-name/],
      ["-e/tmp/e", /-e is sbatch's short form of --error/],
      ["-i/dev/zero", /-i is sbatch's short form of --input/],
      ["-a1-9", /-a is sbatch's short form of --array/],
      ["-W", /-W is sbatch's short form of --wait/],
      ["-Q", /long form/],
      ["-vo/tmp/x", /long form/],
      ["-Aml", /long form.*--account/],
    ];
    for (const [arg, reason] of cases) {
      expect(refusedSbatchArg(arg), arg).toMatch(reason);
      expect(extra(arg), arg).toThrow(reason);
    }
  });

  it("accepts the operator's own options, whole or abbreviated, and refuses words that are not options", () => {
    const env = loadEnv({
      STUDIO_SLURM_EXTRA_ARGS:
        "--account=ml --qos=high --acc=ml --exclusive --mem=16G --wait-all-nodes=1 --comment=a=b",
    });
    expect(env.STUDIO_SLURM_EXTRA_ARGS).toEqual([
      "--account=ml",
      "--qos=high",
      "--acc=ml",
      "--exclusive",
      "--mem=16G",
      "--wait-all-nodes=1",
      "--comment=a=b",
    ]);
    expect(extra("ml")).toThrow(/each extra sbatch argument is --name or --name=value/);
    expect(extra("--Output=/x")).toThrow(/--name or --name=value/);
    expect(extra("---output=/x")).toThrow(/--name or --name=value/);
  });
});
