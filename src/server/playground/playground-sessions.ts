import { DIST_DIR } from "../../platform/package-root";
import { inheritedEnv } from "../../trainers/launch";
import { GenerationServer } from "../../trainers/playground/generation-server";
import type { GenerationRequest } from "../../trainers/playground/protocol";
import { serverCommand } from "../../trainers/playground/server-command";

/**
 * The studio's generation servers for the playground: one per task and model source, started
 * on the first request and kept for the session (the model stays loaded), stopped once idle for
 * `idleMs`. Generation never runs in the studio's process: a server is a process of its own.
 */

export interface PlaygroundSettings {
  idleMs: number;
  /** The interpreter the hf-peft trainer runs with, chosen when a server starts. */
  python: () => string;
  baseEnv: Record<string, string | undefined>;
}

interface Session {
  server: GenerationServer;
  idle: NodeJS.Timeout | null;
}

export interface PlaygroundTarget {
  taskId: string;
  trainer: "builtin" | "hf-peft";
  taskDir: string;
  /** Absolute folder of the trained weights (the task folder or a checkpoint). */
  sourceDir: string;
}

export class PlaygroundSessions {
  private readonly sessions = new Map<string, Session>();

  constructor(private readonly settings: PlaygroundSettings) {}

  /** The continuation of `request` on the target's model, piece by piece. */
  async *generate(
    target: PlaygroundTarget,
    request: Omit<GenerationRequest, "id">,
    signal?: AbortSignal,
  ): AsyncGenerator<string> {
    const key = `${target.taskId}\0${target.sourceDir}`;
    const session = this.sessionFor(key, target);
    if (session.idle) clearTimeout(session.idle);
    session.idle = null;
    try {
      yield* session.server.generate(request, signal);
    } finally {
      this.scheduleIdleStop(key, session);
    }
  }

  /** How many servers run now (for tests and status). */
  get running(): number {
    return this.sessions.size;
  }

  closeAll(): void {
    for (const [key, session] of this.sessions) {
      if (session.idle) clearTimeout(session.idle);
      session.server.close();
      this.sessions.delete(key);
    }
  }

  private sessionFor(key: string, target: PlaygroundTarget): Session {
    const existing = this.sessions.get(key);
    if (existing?.server.alive) return existing;
    const command = serverCommand(
      target.trainer,
      {
        nodePath: process.execPath,
        distDir: DIST_DIR,
        pythonPath: target.trainer === "hf-peft" ? this.settings.python() : null,
      },
      { taskDir: target.taskDir, source: target.sourceDir },
    );
    const env: Record<string, string> = {
      ...inheritedEnv(this.settings.baseEnv),
      PYTHONUNBUFFERED: "1",
      TOKENIZERS_PARALLELISM: "false",
    };
    const session: Session = {
      server: new GenerationServer({ ...command, env: env as NodeJS.ProcessEnv }),
      idle: null,
    };
    this.sessions.set(key, session);
    return session;
  }

  private scheduleIdleStop(key: string, session: Session) {
    if (session.server.busy || this.sessions.get(key) !== session) return;
    if (!session.server.alive) {
      this.sessions.delete(key);
      return;
    }
    if (session.idle) clearTimeout(session.idle);
    session.idle = setTimeout(() => {
      if (session.server.busy) return;
      this.sessions.delete(key);
      session.server.close();
    }, this.settings.idleMs);
    session.idle.unref();
  }
}
