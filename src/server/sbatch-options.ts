/**
 * Which of an operator's extra sbatch arguments would override what the studio sets itself.
 *
 * sbatch parses its options with getopt_long, which takes any unambiguous prefix of a long
 * option as that option (`--outp=x` is `--output=x`) and refuses an ambiguous one. So an
 * argument is refused when its name is a refused option or a prefix of one: either sbatch
 * would read it as that option, or it is ambiguous and sbatch would fail on it anyway.
 */

/** Long options the studio sets itself, or that change how sbatch answers the studio. */
export const SBATCH_OPTIONS_OF_THE_STUDIO = [
  "wrap",
  "output",
  "error",
  "input",
  "open-mode",
  "chdir",
  "job-name",
  "export",
  "export-file",
  "parsable",
  "requeue",
  "no-requeue",
  "array",
  "wait",
  "test-only",
  "help",
  "usage",
  "version",
] as const;

/** sbatch's short options and the long option each one is. */
const SHORT_OPTIONS: Record<string, string> = {
  a: "array",
  A: "account",
  b: "begin",
  B: "extra-node-info",
  c: "cpus-per-task",
  C: "constraint",
  d: "dependency",
  D: "chdir",
  e: "error",
  F: "nodefile",
  G: "gpus",
  h: "help",
  H: "hold",
  i: "input",
  J: "job-name",
  k: "no-kill",
  L: "licenses",
  M: "clusters",
  m: "distribution",
  n: "ntasks",
  N: "nodes",
  o: "output",
  O: "overcommit",
  p: "partition",
  q: "qos",
  Q: "quiet",
  s: "oversubscribe",
  S: "core-spec",
  t: "time",
  V: "version",
  v: "verbose",
  W: "wait",
  w: "nodelist",
  x: "exclude",
};

const REFUSED: readonly string[] = SBATCH_OPTIONS_OF_THE_STUDIO;

/** Null when sbatch may be given `arg`; otherwise why not, naming the option sbatch would read. */
export function refusedSbatchArg(arg: string): string | null {
  if (/^-[^-]/.test(arg)) {
    const long = SHORT_OPTIONS[arg[1]!];
    if (long && REFUSED.includes(long)) {
      return `${arg.slice(0, 2)} is sbatch's short form of --${long}, which the studio sets itself`;
    }
    return `${arg.slice(0, 2)}: give extra sbatch options in their long form, --name or --name=value${long ? ` (--${long}=…)` : ""}`;
  }
  const match = /^--([a-z][a-z0-9-]*)(=.*)?$/s.exec(arg);
  if (!match) return `${arg}: each extra sbatch argument is --name or --name=value`;
  const name = match[1]!;
  if (REFUSED.includes(name)) return `--${name} is set by the studio itself`;
  const meant = REFUSED.filter((option) => option.startsWith(name));
  if (meant.length === 1) {
    return `--${name} is sbatch's abbreviation of --${meant[0]}, which the studio sets itself`;
  }
  if (meant.length > 1) {
    return `--${name} is an abbreviation sbatch could read as ${meant.map((m) => `--${m}`).join(", ")}, which the studio sets itself`;
  }
  return null;
}
