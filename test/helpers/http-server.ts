/**
 * A scripted HTTP server for tests: a real `node:http` server on 127.0.0.1, port 0, that records every
 * request and answers from a script.
 *
 * @example
 * ```ts
 * const server = await startScriptedServer([
 *   { status: 503 },                                  // 1st request
 *   { status: 200, body: { request_id: "req-1" } },   // 2nd request (objects are sent as JSON)
 * ]);
 * // ... point a client at server.url ...
 * server.requests[1]?.headers["x-tinker-retry-count"]; // "1"
 * await server.close();
 * ```
 *
 * Or answer with a function of the request (and its 0-based index):
 * ```ts
 * const server = await startScriptedServer((req) => (req.path === "/api/v1/healthz" ? { body: { status: "ok" } } : { status: 404 }));
 * ```
 */
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** One request as the server saw it. */
export interface RecordedRequest {
  /** HTTP method, e.g. `"POST"`. */
  method: string;
  /** The raw request target as sent on the wire, e.g. `"/api/v1/x?limit=2"` (percent-encoding preserved). */
  url: string;
  /** The path part of `url`, still percent-encoded as sent. */
  path: string;
  /** The parsed query string. */
  query: URLSearchParams;
  /** Request headers, names lowercased (Node's `IncomingHttpHeaders`). */
  headers: IncomingHttpHeaders;
  /** The body as text (`""` when none). */
  body: string;
  /** The body parsed as JSON (throws when it is not JSON). */
  json(): unknown;
}

/** How to answer one request. Every field is optional; `{}` is an empty 200. */
export interface ScriptedReply {
  /** Status code (default 200). */
  status?: number;
  /** Response headers. */
  headers?: Record<string, string>;
  /** A string is sent as is; anything else (object, array, number, ...) as JSON with `content-type: application/json`. */
  body?: unknown;
  /** Wait this long before answering (the request is still recorded at once). */
  delayMs?: number;
  /** Reset the connection instead of answering (the client sees a connection error). */
  destroy?: boolean;
  /** Never answer (until `close()`); for timeout and abort tests. */
  hang?: boolean;
  /** Send the headers and `body`, then reset the connection (with a larger `content-length`: a cut body). */
  destroyAfterBody?: boolean;
}

/** Produces the reply for the request at `index` (0-based). */
export type ScriptHandler = (req: RecordedRequest, index: number) => ScriptedReply | Promise<ScriptedReply>;

/** A running scripted server. */
export interface ScriptedServer {
  /** Base URL, `http://127.0.0.1:<port>` (no trailing slash). */
  url: string;
  /** The port the server listens on. */
  port: number;
  /** Every request received so far, in arrival order. */
  requests: RecordedRequest[];
  /** The underlying `node:http` server. */
  server: Server;
  /** Stops the server, dropping open connections (including hanging requests). */
  close(): Promise<void>;
}

/**
 * Starts a scripted server. With an array, request `i` gets `script[i]`; requests past the end get a 500
 * saying the script ran out. With a function, each request gets the function's reply.
 */
export async function startScriptedServer(script: ScriptHandler | ScriptedReply[]): Promise<ScriptedServer> {
  const requests: RecordedRequest[] = [];
  const handler: ScriptHandler =
    typeof script === "function"
      ? script
      : (_req, i) => script[i] ?? { status: 500, body: { detail: `scripted server: no reply scripted for request #${i}` } };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const target = req.url ?? "/";
      const q = target.indexOf("?");
      const recorded: RecordedRequest = {
        method: req.method ?? "GET",
        url: target,
        path: q < 0 ? target : target.slice(0, q),
        query: new URLSearchParams(q < 0 ? "" : target.slice(q + 1)),
        headers: req.headers,
        body,
        json: () => JSON.parse(body) as unknown,
      };
      const index = requests.length;
      requests.push(recorded);
      void (async () => {
        let reply: ScriptedReply;
        try {
          reply = await handler(recorded, index);
        } catch (err) {
          reply = { status: 500, body: { detail: `scripted server handler threw: ${String(err)}` } };
        }
        if (reply.delayMs !== undefined && reply.delayMs > 0) {
          await new Promise((r) => setTimeout(r, reply.delayMs));
        }
        if (reply.hang === true) return;
        if (reply.destroy === true) {
          req.socket.destroy();
          return;
        }
        if (res.destroyed) return;
        const headers: Record<string, string> = { ...reply.headers };
        let payload = "";
        if (reply.body !== undefined) {
          if (typeof reply.body === "string") {
            payload = reply.body;
          } else {
            payload = JSON.stringify(reply.body);
            if (!Object.keys(headers).some((h) => h.toLowerCase() === "content-type")) {
              headers["content-type"] = "application/json";
            }
          }
        }
        res.writeHead(reply.status ?? 200, headers);
        if (reply.destroyAfterBody === true) {
          res.write(payload, () => setTimeout(() => req.socket.destroy(), 10));
          return;
        }
        res.end(payload);
      })();
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
