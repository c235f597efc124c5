import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { createClient, type StudioClient } from "../../src/cli/client";
import { liveLockHolder } from "../../src/platform/home-lock";
import { freePort } from "../helpers/studio";

const run = promisify(execFile);
const CLI = join(import.meta.dirname, "../../dist/cli.js");

/**
 * A studio of its own for the live-page specs, run through the real CLI so a test can restart
 * it or kill it under the open page (Playwright's webServer cannot be restarted mid-test).
 * Custom command trainers are allowed, so fixtures can stand in for real training.
 */
export class CliStudio {
  readonly home = mkdtempSync(join(tmpdir(), "studio-live-e2e-"));
  readonly url: string;
  readonly client: StudioClient;
  private readonly env: NodeJS.ProcessEnv;

  private constructor(
    readonly port: number,
    extraEnv: Record<string, string>,
  ) {
    this.url = `http://127.0.0.1:${port}`;
    this.env = {
      ...process.env,
      STUDIO_HOME: this.home,
      PORT: String(port),
      HOST: "127.0.0.1",
      STUDIO_URL: "",
      STUDIO_TOKEN: "",
      DATABASE_URL: "",
      STUDIO_ALLOW_COMMAND_TRAINER: "1",
      ...extraEnv,
    };
    this.client = createClient(this.url);
  }

  /** `prepare` runs on the empty home before the studio starts (to mount a small disk there). */
  static async start(
    extraEnv: Record<string, string> = {},
    prepare: (home: string) => void = () => {},
  ): Promise<CliStudio> {
    const studio = new CliStudio(await freePort(), extraEnv);
    prepare(studio.home);
    await studio.cli("start");
    return studio;
  }

  async cli(...args: string[]): Promise<string> {
    try {
      const { stdout } = await run(process.execPath, [CLI, ...args], {
        env: this.env,
        timeout: 60_000,
      });
      return stdout;
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(e.stderr?.trim() || e.message);
    }
  }

  pid(): number | null {
    return liveLockHolder(join(this.home, "studio.lock"))?.pid ?? null;
  }

  /** Kills the studio with no chance to clean up, and waits until it is gone. */
  async kill() {
    const pid = this.pid();
    if (!pid) return;
    process.kill(pid, "SIGKILL");
    while (this.pid() === pid) await new Promise((resolve) => setTimeout(resolve, 20));
  }

  trainingLog(taskId: string): string[] {
    const text = readFileSync(join(this.home, "tasks", taskId, "training.log"), "utf8");
    return text.split("\n").slice(0, -1);
  }

  /** The trainer's pid of the task's latest attempt, once it has one. */
  async trainerPid(taskId: string): Promise<number | null> {
    const { attempts } = await this.client.task.get.query({ id: taskId });
    const handle = attempts[0]?.handle as { trainer?: { pid: number } } | null | undefined;
    return handle?.trainer?.pid ?? null;
  }

  async dispose() {
    await this.cli("stop").catch(() => this.kill());
    rmSync(this.home, { recursive: true, force: true });
  }
}
