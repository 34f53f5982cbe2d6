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
 * @module
 */
import http from "node:http";
import https from "node:https";
import zlib from "node:zlib";

/** Largest response body accepted (REST answers are JSON pages far below this). */
export const MAX_BODY_BYTES = 64 * 1024 * 1024;
/** Idle keep-alive sockets are closed after this long, before typical servers close them (5 s and up). */
const IDLE_SOCKET_MS = 4_000;

const httpAgent = new http.Agent({ keepAlive: true, timeout: IDLE_SOCKET_MS });
const httpsAgent = new https.Agent({ keepAlive: true, timeout: IDLE_SOCKET_MS });

/** Statuses whose Response may not have a body. */
const NULL_BODY = new Set([101, 103, 204, 205, 304]);

/**
 * Sends `req` with node:http(s) and resolves with its Response, body already read.
 *
 * @example
 * ```ts
 * const res = await nodeHttpFetch(new Request("http://127.0.0.1:8000/api/v1/healthz"));
 * console.log(res.status, await res.text());
 * ```
 */
export async function nodeHttpFetch(req: Request): Promise<Response> {
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
    const outgoing = (secure ? https : http).request(
      url,
      { method: req.method, headers, agent: secure ? httpsAgent : httpAgent },
      (res) => {
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
      },
    );
    outgoing.on("error", (err) => fail(new TypeError("fetch failed", { cause: err })));
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
