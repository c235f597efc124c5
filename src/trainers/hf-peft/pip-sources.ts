/**
 * Where `studio setup hf-peft` lets pip look for packages, decided from pip's own configuration
 * (`pip config list`) and the setup's options. Pure, so every case is tested.
 *
 * The rule: a machine whose every configured package source is on the machine itself (file://
 * indexes, find-links folders) installs from those only and never asks PyPI, whose lookups on
 * such a machine can hang for minutes; anywhere else pip's configuration is used as it is.
 */

/** One setting from `pip config list`: `global.extra-index-url='file:///a file:///b'`. */
export interface PipSetting {
  /** global, user, site, or ":env:" for PIP_* environment variables. */
  scope: string;
  name: string;
  value: string;
}

export interface PipSourceOptions {
  /** --index-url given to the setup, in order: the first replaces PyPI, the rest are extra. */
  indexUrls: string[];
  /** --find-links given to the setup. */
  findLinks: string[];
  /** The torch requirement being installed: a `+cpu` build is not on PyPI. */
  torchRequirement: string;
}

export interface PipSources {
  /** Arguments for `pip install`. */
  args: string[];
  /** Where packages come from, in words, for the setup's report. */
  description: string;
}

/** The index PyTorch's CPU builds (`torch==X+cpu`) are served from; PyPI has none. */
export const PYTORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu";

/** Parses `pip config list` output; lines it cannot read are skipped. */
export function parsePipConfigList(output: string): PipSetting[] {
  const settings: PipSetting[] = [];
  for (const line of output.split("\n")) {
    // pip prints `<scope>.<name>=<repr(value)>`; the scope of an environment variable is ":env:".
    const match = /^([^=]*?)\.([a-z0-9-]+)=(['"])(.*)\3\s*$/.exec(line.trim());
    if (!match) continue;
    settings.push({ scope: match[1]!, name: match[2]!, value: match[4]! });
  }
  return settings;
}

/** A source on this machine: a file:// URL or a plain path. */
export function isLocalSource(source: string): boolean {
  if (/^file:/i.test(source)) return true;
  return !/^[a-z][a-z0-9+.-]*:\/\//i.test(source);
}

/** Every value of a setting across scopes, each once (pip merges them the same way). */
function valuesOf(settings: PipSetting[], name: string): string[] {
  const values = settings
    .filter((s) => s.name === name)
    .flatMap((s) => s.value.split(/\s+/))
    .filter(Boolean);
  return [...new Set(values)];
}

export function pipSources(settings: PipSetting[], options: PipSourceOptions): PipSources {
  const cpuTorch = /\+cpu\b/.test(options.torchRequirement);
  if (options.indexUrls.length > 0 || options.findLinks.length > 0) {
    const [index, ...extra] = options.indexUrls;
    const args = [
      ...(index ? ["--index-url", index] : ["--no-index"]),
      ...extra.flatMap((url) => ["--extra-index-url", url]),
      ...options.findLinks.flatMap((path) => ["--find-links", path]),
    ];
    return {
      args,
      description: `${[...options.indexUrls, ...options.findLinks].join(", ")} (as given)`,
    };
  }

  const configuredIndex = valuesOf(settings, "index-url");
  const extras = valuesOf(settings, "extra-index-url");
  const findLinks = valuesOf(settings, "find-links");
  const noIndex = valuesOf(settings, "no-index").some((v) => /^(1|true|yes|on)$/i.test(v));
  if (noIndex) {
    return { args: [], description: `${findLinks.join(", ") || "nothing"} (pip's no-index)` };
  }
  if (configuredIndex.length > 0) {
    return {
      args: [],
      description: `${[...configuredIndex, ...extras, ...findLinks].join(", ")} (pip's configuration)`,
    };
  }
  const configured = [...extras, ...findLinks];
  if (configured.length > 0 && configured.every(isLocalSource)) {
    // pip adds the configured extra indexes and find-links itself; only PyPI is replaced.
    const [first] = extras;
    return {
      args: first ? ["--index-url", first] : ["--no-index"],
      description: `${configured.join(", ")} (pip's configured local sources; PyPI is not asked)`,
    };
  }
  const pypi = ["PyPI", ...configured].join(", ");
  if (cpuTorch) {
    return {
      args: ["--extra-index-url", PYTORCH_CPU_INDEX],
      description: `${pypi}, ${PYTORCH_CPU_INDEX} (for torch's CPU build)`,
    };
  }
  return { args: [], description: pypi };
}
