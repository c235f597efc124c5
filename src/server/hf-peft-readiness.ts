import { PreflightCache } from "../trainers/hf-peft/preflight-cache";
import { type PreflightSummary, summarizePreflight } from "../trainers/hf-peft/preflight-summary";
import { type HfPeftPython, hfPeftPython } from "../trainers/hf-peft/setup-record";

export interface HfPeftReadinessReport {
  /** The interpreter the trainer runs with, and why that one. */
  python: string;
  source: HfPeftPython["source"];
  ok: boolean;
  /** What stops it, in words a person can act on. */
  problems: string[];
  summary: PreflightSummary;
}

/** What a person runs to set the trainer up; every refusal and the page name it. */
export const HF_PEFT_SETUP_COMMAND = "studio setup hf-peft";

/**
 * Whether the hf-peft trainer can run, for start requests and the page. The interpreter is
 * chosen again on every call (a setup run while the studio serves takes effect at once); its
 * preflight is cached as long as the interpreter and its packages are unchanged, and a setup's
 * own report is taken as it is, so the studio imports torch only when something changed.
 */
export class HfPeftReadiness {
  private readonly cache = new PreflightCache();

  constructor(
    private readonly explicitPython: string | undefined,
    private readonly home: string,
  ) {}

  interpreter(): HfPeftPython {
    return hfPeftPython(this.explicitPython, this.home);
  }

  async check(): Promise<HfPeftReadinessReport> {
    const chosen = this.interpreter();
    if (chosen.record) this.cache.remember(chosen.path, chosen.record.preflight);
    const result = await this.cache.check(chosen.path);
    const problems = [...(chosen.recordProblem ? [chosen.recordProblem] : []), ...result.problems];
    return {
      python: chosen.path,
      source: chosen.source,
      ok: result.ok,
      problems,
      summary: summarizePreflight(result.details),
    };
  }
}
