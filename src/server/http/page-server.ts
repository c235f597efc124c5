import type { IncomingMessage, ServerResponse } from "node:http";

export interface PageServerOptions {
  dir: string;
  hostname: string;
  port: number;
  log: (message: string) => void;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

export interface PageServer {
  handle: Handler;
  /** Starts loading now, in the background (a failure is logged, and tried again on a request). */
  preload: () => void;
}

/**
 * The page's server (Next). Loading and preparing Next is most of a studio's start (seconds of
 * CPU on a busy machine), so the studio does not wait for it: the API answers from the moment
 * the studio listens, and a page request waits until Next is ready. It loads just after the start
 * (`preload`), or at the first page request (STUDIO_PAGE_ON_DEMAND). A failed preparation is
 * logged, answered with a 500 naming it, and tried again on the next request (the build may have
 * been finished since).
 */
export function createPageServer(options: PageServerOptions): PageServer {
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

  const load = () => {
    ready ??= prepare().catch((err: unknown) => {
      ready = null;
      throw err;
    });
    return ready;
  };

  const handle: Handler = async (req, res) => {
    let handleNext: Handler;
    try {
      handleNext = await load();
    } catch (err) {
      options.log(`the page's server could not start: ${err}`);
      if (!res.headersSent) {
        res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
        res.end(`the page's server could not start: ${err}\n`);
      }
      return;
    }
    try {
      await handleNext(req, res);
    } catch (err) {
      options.log(`page error: ${err}`);
      if (!res.headersSent) res.writeHead(500).end();
    }
  };

  return {
    handle,
    preload: () => {
      load().catch((err) => options.log(`the page's server could not start: ${err}`));
    },
  };
}
