import type { IncomingMessage, ServerResponse } from "node:http";

export interface PageServerOptions {
  dir: string;
  hostname: string;
  port: number;
  log: (message: string) => void;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

/**
 * The page's server (Next), loaded on the first request for a page. Loading and preparing Next
 * is most of a studio's start (seconds of CPU on a busy machine), and a studio driven through
 * the CLI or the API alone never needs it; the API answers from the moment the studio listens.
 * A failed preparation is logged and answered with a 500 naming it, and tried again on the next
 * request (the build may have been finished since).
 */
export function createPageServer(options: PageServerOptions): Handler {
  let ready: Promise<Handler> | null = null;

  const prepare = async (): Promise<Handler> => {
    const { default: next } = await import("next");
    const app = next({
      dev: false,
      dir: options.dir,
      hostname: options.hostname,
      port: options.port,
    });
    await app.prepare();
    return app.getRequestHandler() as Handler;
  };

  return async (req, res) => {
    ready ??= prepare().catch((err: unknown) => {
      ready = null;
      throw err;
    });
    let handle: Handler;
    try {
      handle = await ready;
    } catch (err) {
      options.log(`the page's server could not start: ${err}`);
      if (!res.headersSent) {
        res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
        res.end(`the page's server could not start: ${err}\n`);
      }
      return;
    }
    try {
      await handle(req, res);
    } catch (err) {
      options.log(`page error: ${err}`);
      if (!res.headersSent) res.writeHead(500).end();
    }
  };
}
