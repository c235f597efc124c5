import type { Command } from "commander";
import {
  failureLines,
  type RebuildReport,
  summarizeRebuild,
} from "../server/recovery/rebuild-report";
import { createClient, home, studioUrl } from "./client";
import { print, table } from "./format";

/** `studio recover`: asks the running studio to rebuild lost tasks from their folders. */
export function registerRecoverCommand(program: Command) {
  program
    .command("recover")
    .description(
      "rebuild the tasks the database lost from their folders (studio start does it at boot)",
    )
    .option("--json", "machine-readable output")
    .action(async (opts: { json?: boolean }) => {
      const url = studioUrl(home());
      if (!url) {
        // Every start rebuilds before it serves; without a studio nothing here opens the database.
        throw new Error(
          `no studio is running on ${home()}; \`studio start\` rebuilds the tasks the database lost from their folders before it serves (studio.log says what it rebuilt), and \`studio recover\` then reports on every folder`,
        );
      }
      const report = await createClient(url).studio.recover.mutate();
      print(opts.json ?? false, report, () => formatReport(report));
    });
}

function formatReport(report: RebuildReport): string {
  const out = [`rebuild from task folders: ${summarizeRebuild(report)}`];
  if (report.rebuilt.length) {
    out.push(
      "",
      table(
        report.rebuilt.map((t) => ({
          id: t.taskId,
          status: t.status,
          attempt: t.attempt,
          name: t.name,
          reason: t.statusReason,
        })),
        ["id", "status", "attempt", "name", "reason"],
      ),
    );
    for (const t of report.rebuilt) {
      out.push(`not recovered for ${t.taskId}: ${t.notRecovered.join("; ")}`);
    }
  }
  const failures = failureLines(report);
  if (failures.length) out.push("", ...failures);
  return out.join("\n");
}
