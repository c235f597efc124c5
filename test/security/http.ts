import { request } from "node:http";
import superjson from "superjson";

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export interface RawRequest {
  method?: string;
  /** Sent as it is: no normalization of dot segments or encodings. */
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** The client address the studio sees (any 127.x.y.z reaches a studio bound to 127.0.0.1). */
  localAddress?: string;
  /** For streams: stop reading after this long and return what came. */
  readForMs?: number;
}

/** One HTTP request with exactly the headers given (a Host of our choosing, no Origin unless set). */
export function raw(port: number, options: RawRequest): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        method: options.method ?? "GET",
        path: options.path,
        headers: { host: `127.0.0.1:${port}`, ...options.headers },
        localAddress: options.localAddress,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk) => {
          body += chunk;
        });
        const done = () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
        res.on("end", done);
        res.on("close", done);
        if (options.readForMs !== undefined) {
          setTimeout(() => {
            res.destroy();
            done();
          }, options.readForMs);
        }
      },
    );
    req.on("error", reject);
    req.end(options.body);
  });
}

/** A tRPC call's URL path (query input encoded as httpLink does it). */
export function trpcPath(procedure: string, input?: unknown): string {
  const base = `/api/trpc/${procedure}`;
  return input === undefined
    ? base
    : `${base}?input=${encodeURIComponent(JSON.stringify(superjson.serialize(input)))}`;
}

/** A tRPC mutation's JSON body. */
export function trpcBody(input: unknown): string {
  return JSON.stringify(superjson.serialize(input));
}
