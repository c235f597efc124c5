import { describe, expect, it } from "vitest";
import { createClient } from "../../src/cli/client";
import { TestStudio } from "../helpers/studio";

describe("embedded database under SIGKILL", () => {
  it("keeps every acknowledged write through repeated kills in the middle of writes", async () => {
    const studio = await TestStudio.create("pglite");
    const acknowledged: string[] = [];
    try {
      for (let cycle = 0; cycle < 3; cycle++) {
        await studio.start();
        const client = createClient(`http://127.0.0.1:${studio.port}`);
        // The kill lands while writes are under way: once this cycle has its first few answers
        // (a loaded machine can take seconds for them), a little later each cycle.
        const answered = acknowledged.length;
        let killer: NodeJS.Timeout | undefined;
        const armKiller = () => {
          if (killer || acknowledged.length - answered < 4) return;
          killer = setTimeout(() => void studio.kill("SIGKILL"), 20 + cycle * 40);
        };
        // Writers run until the studio dies under them; only answered writes count.
        await Promise.all(
          Array.from({ length: 4 }, async (_, writer) => {
            for (let i = 0; ; i++) {
              try {
                const task = await client.task.create.mutate({
                  name: `cycle ${cycle} writer ${writer} #${i}`,
                  model: "builtin:tiny",
                  dataset: "sample",
                });
                acknowledged.push(task.id);
                armKiller();
              } catch {
                return;
              }
            }
          }),
        );
        clearTimeout(killer);
        await studio.kill("SIGKILL");
      }
      await studio.start();
      const stored = new Set<string>();
      let cursor: { createdAt: Date; id: string } | undefined;
      do {
        const page = await studio.client.task.list.query({ limit: 500, cursor });
        for (const t of page.items) stored.add(t.id);
        cursor = page.nextCursor;
      } while (cursor);
      expect(acknowledged.length).toBeGreaterThan(10);
      expect(acknowledged.filter((id) => !stored.has(id))).toEqual([]);
    } finally {
      await studio.dispose();
    }
  }, 120_000);
});
