/**
 * The default `fetch` of every REST attempt: a WHATWG-shaped fetch over node:http(s) with keep-alive.
 *
 * Why not `globalThis.fetch`: in Node 20 the first call of the built-in fetch (undici) compiles its HTTP
 * parser, a WebAssembly module, in the background, which costs about 28 MB of memory for a second or so,
 * in every process, right when a short CLI command or a download starts. node:http parses natively.
 *
 * It does exactly what the retry layer asks of a fetch, no more: one request per call (redirects are
 * returned, never followed: the retry layer decides), the request's `AbortSignal` (rejecting with its
 * reason, as fetch does), `gzip`/`deflate`/`br` bodies decoded, and network failures rejected as
 * `TypeError("fetch failed", { cause })`, as fetch does. Bodies are read whole before the Response is
 * returned, so the per-attempt timeout covers them; REST bodies are small, and larger ones than
 * {@link MAX_BODY_BYTES} are refused.
 *
 * Proxies (`proxy.ts`): a URL that goes through a proxy is sent over a `CONNECT` tunnel (then TLS for https),
 * from a keep-alive agent per proxy, so tunnels are reused like direct connections. The proxy's credentials
 * go on the `CONNECT` only; a refusal rejects with the {@link ProxyError} itself (not a `TypeError`), so the
 * retry layer can tell a final 407 from a retryable 502.
 *
 * @module
 */
import http from "node:http";
import https from "node:https";
import type { Duplex } from "node:stream";
import zlib from "node:zlib";
import { ProxyError } from "../../core/errors.js";
import { envProxySettings, openTunnel, proxyFor, type ProxyServer, type ProxySettings } from "./proxy.js";

/** Largest response body accepted (REST answers are JSON pages far below this). */
export const MAX_BODY_BYTES = 64 * 1024 * 1024;
/** Idle keep-alive sockets are closed after this long, before typical servers close them (5 s and up). */
const IDLE_SOCKET_MS = 4_000;

const httpAgent = new http.Agent({ keepAlive: true, timeout: IDLE_SOCKET_MS });
const httpsAgent = new https.Agent({ keepAlive: true, timeout: IDLE_SOCKET_MS });

/** Keep-alive agents of tunnels, by proxy (and its credentials) and scheme. */
const tunnelAgents = new Map<string, http.Agent>();

/** An agent whose connections are `CONNECT` tunnels through `proxy` (TLS on top for https). */
function tunnelAgent(proxy: ProxyServer, secure: boolean): http.Agent {
  const key = `${secure ? "https" : "http"}\n${proxy.key}`;
  let agent = tunnelAgents.get(key);
  if (agent === undefined) {
    const Base = secure ? https.Agent : http.Agent;
    agent = new (class extends Base {
      override createConnection(options: http.ClientRequestArgs, callback?: (err: Error | null, stream: Duplex) => void): undefined {
        const target = new URL(
          `${secure ? "https" : "http"}://${hostForUrl(options.host ?? "localhost")}:${options.port ?? (secure ? 443 : 80)}`,
        );
        openTunnel(proxy, target).then(
          (socket) => {
            if (!secure) {
              callback?.(null, socket);
              return;
            }
            let tlsSocket: Duplex | null | undefined;
            try {
              // https.Agent's own: TLS (with its session cache and servername) over the tunnel.
              tlsSocket = https.Agent.prototype.createConnection.call(this, { ...options, socket } as https.RequestOptions);
            } catch (err) {
              socket.destroy();
              callback?.(err as Error, socket);
              return;
            }
            if (tlsSocket !== null && tlsSocket !== undefined) callback?.(null, tlsSocket);
          },
          (err: Error) => callback?.(err, undefined as unknown as Duplex),
        );
        return undefined;
      }
    })({ keepAlive: true, timeout: IDLE_SOCKET_MS });
    tunnelAgents.set(key, agent);
  }
  return agent;
}

function hostForUrl(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

/** Statuses whose Response may not have a body. */
const NULL_BODY = new Set([101, 103, 204, 205, 304]);

/**
 * Sends `req` with node:http(s) and resolves with its Response, body already read. Proxies come from
 * `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` (see {@link createNodeHttpFetch} for fixed settings).
 *
 * @example
 * ```ts
 * const res = await nodeHttpFetch(new Request("http://127.0.0.1:8000/api/v1/healthz"));
 * console.log(res.status, await res.text());
 * ```
 */
export function nodeHttpFetch(req: Request): Promise<Response> {
  return sendRequest(req, envProxySettings());
}

/**
 * A {@link nodeHttpFetch} that routes by the given proxy settings (a client's, resolved once from its `proxy`
 * option and the environment).
 *
 * @example
 * ```ts
 * import { resolveProxySettings } from "./proxy.js";
 *
 * const fetchViaProxy = createNodeHttpFetch(resolveProxySettings("http://127.0.0.1:3128"));
 * const res = await fetchViaProxy(new Request("http://127.0.0.1:8000/api/v1/healthz"));
 * ```
 */
export function createNodeHttpFetch(settings: ProxySettings): (req: Request) => Promise<Response> {
  return (req) => sendRequest(req, settings);
}

async function sendRequest(req: Request, settings: ProxySettings): Promise<Response> {
  const url = new URL(req.url);
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new TypeError(`fetch failed: unsupported scheme ${url.protocol}`);
  const signal = req.signal;
  if (signal.aborted) throw signal.reason;
  const body = req.body === null ? null : Buffer.from(await req.arrayBuffer());
  const headers: Record<string, string> = {};
  req.headers.forEach((value, name) => {
    headers[name] = value;
  });
  headers["accept-encoding"] ??= "gzip, deflate, br";
  if (body !== null) headers["content-length"] = String(body.length);
  const secure = url.protocol === "https:";
  const proxy = proxyFor(url, settings);
  const agent = proxy === undefined ? (secure ? httpsAgent : httpAgent) : tunnelAgent(proxy, secure);

  return new Promise<Response>((resolve, reject) => {
    let settled = false;
    const fail = (err: unknown): void => {
      if (settled) return;
      settled = true;
      signal.removeEventListener("abort", onAbort);
      outgoing.destroy();
      reject(err);
    };
    const onAbort = (): void => fail(signal.reason);
    const outgoing = (secure ? https : http).request(url, { method: req.method, headers, agent }, (res) => {
      const status = res.statusCode ?? 0;
      if (req.redirect === "error" && status >= 300 && status < 400) {
        res.resume();
        fail(new TypeError("fetch failed: redirect while redirect mode is 'error'"));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) fail(new TypeError(`fetch failed: response body over ${MAX_BODY_BYTES} bytes`));
        else chunks.push(chunk);
      });
      res.on("error", (err) => fail(new TypeError("fetch failed", { cause: err })));
      res.on("close", () => {
        if (!res.complete) fail(new TypeError("fetch failed", { cause: new Error("the response was cut off") }));
      });
      res.on("end", () => {
        if (settled) return;
        let data: Buffer;
        try {
          data = decode(Buffer.concat(chunks, size), res.headers["content-encoding"]);
        } catch (err) {
          fail(new TypeError("fetch failed: the response body could not be decoded", { cause: err }));
          return;
        }
        const responseHeaders = new Headers();
        for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
          responseHeaders.append(res.rawHeaders[i] as string, res.rawHeaders[i + 1] as string);
        }
        let response: Response;
        try {
          response = new Response(NULL_BODY.has(status) || req.method === "HEAD" ? null : data, {
            status,
            statusText: res.statusMessage ?? "",
            headers: responseHeaders,
          });
        } catch (err) {
          fail(new TypeError(`fetch failed: unusable status ${status}`, { cause: err }));
          return;
        }
        Object.defineProperty(response, "url", { value: req.url });
        settled = true;
        signal.removeEventListener("abort", onAbort);
        resolve(response);
      });
    });
    // A proxy's refusal is passed on as is: the retry layer decides on its status.
    outgoing.on("error", (err) => fail(err instanceof ProxyError ? err : new TypeError("fetch failed", { cause: err })));
    signal.addEventListener("abort", onAbort, { once: true });
    outgoing.end(body ?? undefined);
  });
}

function decode(data: Buffer, encoding: string | undefined): Buffer {
  if (data.length === 0) return data;
  switch (encoding?.trim().toLowerCase()) {
    case undefined:
    case "":
    case "identity":
      return data;
    case "gzip":
    case "x-gzip":
      return zlib.gunzipSync(data);
    case "deflate":
      // Servers send either zlib-wrapped or raw deflate under this name.
      return ((data[0] as number) & 0x0f) === 8 ? zlib.inflateSync(data) : zlib.inflateRawSync(data);
    case "br":
      return zlib.brotliDecompressSync(data);
    default:
      throw new Error(`unsupported content-encoding ${encoding ?? ""}`);
  }
}
