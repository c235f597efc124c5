import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { createPageServer } from "../../src/server/http/page-server";

const empty = mkdtempSync(join(tmpdir(), "no-page-build-"));
afterAll(() => rmSync(empty, { recursive: true, force: true }));

it("answers a page request with the reason when the page's server cannot start, and tries again on the next", async () => {
  const logged: string[] = [];
  const pages = createPageServer({
    dir: empty,
    hostname: "127.0.0.1",
    port: 0,
    log: (m) => logged.push(m),
  });
  const server = createServer((req, res) => void pages.handle(req, res));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/finetune`;
  try {
    for (const attempt of [1, 2]) {
      const response = await fetch(url);
      expect(response.status).toBe(500);
      expect(await response.text()).toMatch(/^the page's server could not start: .*\n$/);
      expect(logged).toHaveLength(attempt);
    }
    expect(logged[0]).toMatch(/production build/);
  } finally {
    server.close();
  }
});
