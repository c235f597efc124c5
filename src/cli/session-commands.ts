import type { Command } from "commander";
import { connect } from "./client";
import { print, table } from "./format";

/** `studio sessions list | revoke <id> | revoke --all`: the page's signed-in browsers. */
export function registerSessionCommands(sessions: Command) {
  sessions
    .command("list")
    .description("signed-in browsers: id, address, user agent, last use, expiry")
    .option("--json", "machine-readable output")
    .action(async (opts: { json?: boolean }) => {
      const list = await connect().session.list.query();
      print(opts.json ?? false, list, () =>
        list.length === 0
          ? "no sessions"
          : table(
              list.map((s) => ({
                id: s.id,
                client: s.client,
                created: s.createdAt,
                "last seen": s.lastSeenAt,
                expires: s.expiresAt,
                "user agent": s.userAgent.slice(0, 60),
              })),
              ["id", "client", "created", "last seen", "expires", "user agent"],
            ),
      );
    });

  sessions
    .command("revoke")
    .description("end one session (its browser must sign in again), or every one with --all")
    .argument("[id]", "the session's id (see studio sessions list)")
    .option("--all", "end every session")
    .option("--json", "machine-readable output")
    .action(async (id: string | undefined, opts: { all?: boolean; json?: boolean }) => {
      if (!!opts.all === !!id) throw new Error("give a session id, or --all (not both)");
      const client = connect();
      if (opts.all) {
        const { revoked } = await client.session.revokeAll.mutate();
        print(opts.json ?? false, { revoked }, () => `${revoked} session(s) ended`);
        return;
      }
      const result = await client.session.revoke.mutate({ id: id! });
      print(opts.json ?? false, result, () => `session ${id} ended`);
    });
}
