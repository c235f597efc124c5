import type { Command } from "commander";
import { connect } from "./client";
import { print, table } from "./format";

/** `studio dataset list`: the stored datasets, with the ids that task create and evaluate take. */
export function registerDatasetCommands(dataset: Command) {
  dataset
    .command("list")
    .description("stored datasets: id, name, format, rows")
    .option("--json", "machine-readable output")
    .action(async (opts: { json?: boolean }) => {
      const list = await connect().dataset.list.query();
      print(opts.json ?? false, list, () =>
        table(
          list.map((d) => ({ id: d.id, name: d.name, format: d.format, rows: d.rowCount })),
          ["id", "name", "format", "rows"],
        ),
      );
    });
}
