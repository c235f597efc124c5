/**
 * What a person wants to know from a preflight report (preflight.py): the versions, and whether
 * training runs on GPUs. Read leniently: a report from an older preflight.py lacks fields.
 */
export interface PreflightSummary {
  python: string | null;
  packages: Record<(typeof PACKAGES)[number], string | null>;
  /** The CUDA version torch was built for (null: a CPU build), and the GPUs it sees. */
  cuda: { available: boolean; version: string | null; devices: string[] };
}

const PACKAGES = ["torch", "transformers", "peft", "accelerate"] as const;

type Loose = Record<string, unknown> | undefined;
const text = (value: unknown) => (typeof value === "string" ? value : null);
const object = (value: unknown): Loose =>
  typeof value === "object" && value !== null ? (value as Record<string, unknown>) : undefined;

export function summarizePreflight(details: Record<string, unknown>): PreflightSummary {
  const packages = object(details.packages);
  const cuda = object(details.cuda);
  const devices = Array.isArray(cuda?.devices)
    ? cuda.devices.filter((d) => typeof d === "string")
    : [];
  return {
    python: text(details.python),
    packages: Object.fromEntries(
      PACKAGES.map((name) => [name, text(object(packages?.[name])?.version)]),
    ) as PreflightSummary["packages"],
    cuda: { available: cuda?.available === true, version: text(cuda?.version), devices },
  };
}

/** "CUDA 12.4, 2 GPUs: NVIDIA H100, NVIDIA H100" or "CPU only (…)". */
export function describeDevices(summary: PreflightSummary): string {
  const { cuda } = summary;
  if (cuda.available && cuda.devices.length > 0) {
    const n = cuda.devices.length;
    return `CUDA ${cuda.version ?? "?"}, ${n} GPU${n === 1 ? "" : "s"}: ${cuda.devices.join(", ")}`;
  }
  if (cuda.version) return `CPU only (torch is built for CUDA ${cuda.version}, but sees no GPU)`;
  return "CPU only (a CPU build of torch)";
}
