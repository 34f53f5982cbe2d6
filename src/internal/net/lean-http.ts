/**
 * A small HTTP/1.1 GET client for large downloads that allocates nothing per chunk.
 *
 * node:http hands every socket read to JavaScript as a fresh buffer. At hundreds of MB/s those buffers pile up
 * as garbage faster than V8 collects them (it waits for about 64 MB of external memory), which is what made
 * a download's memory grow by ~65 MB whatever the archive size. Here the socket reads into one fixed buffer
 * (`onread`, supported by net and tls sockets) and the body is handed to the consumer as views of it, valid
 * only during the call. A consumer that returns a promise pauses the socket until it settles, so the fixed
 * buffer is never overwritten while it is still needed.
 *
 * Scope, on purpose: GET only; `Connection: close`; `Content-Length`, chunked and read-until-close bodies;
 * redirects followed (relative or to other hosts) up to a bound; TLS with the platform's default verification.
 * The caller chooses every request header: this module adds only `Host`, `Connection` and `User-Agent`, so no
 * credential can leak to a download host.
 *
 * Through a proxy (`proxy.ts`, decided for every hop): the socket to the proxy reads into the same fixed buffer,
 * sends `CONNECT host:port` (with the proxy's credentials, which never reach the download host), parses the answer
 * (a refusal is a {@link ProxyError}), then speaks HTTP to the host inside the tunnel. For an `http://` host nothing
 * changes: the body still arrives in the fixed buffer. For an `https://` host, TLS runs over the tunnel socket,
 * and Node ignores `onread` for a TLS socket built on an existing socket: the body then arrives as ordinary
 * per-read buffers (garbage the collector reclaims later), handled with the same pausing.
 *
 * @module
 */
import net from "node:net";
import tls from "node:tls";
import { TinkerError } from "../../core/errors.js";
import {
  authorityOf,
  connectRefusal,
  connectRequest,
  envProxySettings,
  proxyConnectError,
  proxyFor,
  type ProxyServer,
  type ProxySettings,
} from "./proxy.js";
import { followRedirects } from "./redirect.js";

/** Bytes of the fixed read buffer of each connection. */
const READ_BUFFER_BYTES = 64 * 1024;
/** Longest response head accepted (status line and headers). */
const MAX_HEAD_BYTES = 64 * 1024;
/** Longest chunk-size or trailer line accepted in a chunked body. */
const MAX_LINE_BYTES = 4096;

/** The head of a response, and a way to read its body. */
export interface LeanResponse {
  /** HTTP status code. */
  readonly status: number;
  /** Response headers with lower-case names; repeated headers are joined with `, `. */
  readonly headers: Readonly<Record<string, string>>;
  /** The URL that answered (after redirects). */
  readonly url: URL;
  /**
   * Streams the body to `onChunk`. Each chunk is a view of a reused buffer, valid only until `onChunk` returns
   * (or, when it returns a promise, until that settles; reading is paused meanwhile). Resolves once the whole
   * body arrived; rejects when the connection fails or closes early, or with whatever `onChunk` threw.
   */
  consume(onChunk: (chunk: Buffer) => void | Promise<void>): Promise<void>;
  /** Reads the body as UTF-8 text, keeping at most `limit` bytes (default 4096) and discarding the rest. */
  text(limit?: number): Promise<string>;
  /** Closes the connection without reading (more of) the body. */
  close(): void;
}

/** Options of {@link leanGet}. */
export interface LeanGetOptions {
  /** Request headers, sent as given (besides `Host`, `Connection: close` and a default `User-Agent`). */
  headers?: Record<string, string>;
  /** Aborts the connection, during the head or the body. */
  signal?: AbortSignal;
  /** Redirects to follow (default 5); the same headers are sent to every hop. */
  maxRedirects?: number;
  /** Proxy settings, applied to every hop (default: `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` of `process.env`). */
  proxy?: ProxySettings;
}

/**
 * GETs `url` and resolves with the response head once it has arrived (after following redirects).
 *
 * @throws {TinkerError} for an unsupported scheme, too many redirects or an invalid header; network errors
 *   (`ECONNRESET`, ...), malformed answers (`EPROTO`) and aborts reject with plain `Error`s.
 * @example
 * ```ts
 * let bytes = 0;
 * const res = await leanGet("https://example.com/archive.tar", { headers: { range: "bytes=1024-" } });
 * if (res.status === 206) await res.consume((chunk) => { bytes += chunk.length; });
 * else res.close();
 * ```
 */
export async function leanGet(url: string | URL, options: LeanGetOptions = {}): Promise<LeanResponse> {
  const maxRedirects = options.maxRedirects ?? 5;
  return followRedirects(
    { url: new URL(url).toString(), method: "GET", headers: options.headers ?? {}, body: null },
    (hop) => getOnce(new URL(hop.url), { ...options, headers: hop.headers }),
    (res) => ({ status: res.status, location: res.headers["location"], discard: () => res.close() }),
    {
      maxRedirects,
      stripOnCrossOrigin: [], // downloads carry no credentials: the same headers go to every hop
      tooMany: (max) => new TinkerError(`the download URL redirected more than ${max} times`),
    },
  );
}

function getOnce(target: URL, options: LeanGetOptions): Promise<LeanResponse> {
  if (target.protocol !== "http:" && target.protocol !== "https:") {
    return Promise.reject(new TinkerError(`the download URL has an unsupported scheme ${target.protocol}`));
  }
  if (options.signal?.aborted === true) return Promise.reject(abortError(options.signal));
  let head: string;
  let proxy: ProxyServer | undefined;
  try {
    head = requestHead(target, options.headers ?? {});
    proxy = proxyFor(target, options.proxy ?? envProxySettings());
  } catch (err) {
    return Promise.reject(err);
  }
  return new Promise<LeanResponse>((resolve, reject) => {
    new Connection(target, head, proxy, options, resolve, reject);
  });
}

/** The request line and headers; refuses header names or values that would inject lines. */
function requestHead(target: URL, given: Record<string, string>): string {
  const headers: Record<string, string> = Object.keys(given).some((k) => k.toLowerCase() === "user-agent")
    ? given
    : { "user-agent": "tinker-ts", ...given };
  const lines = [`GET ${target.pathname}${target.search} HTTP/1.1`, `Host: ${target.host}`, "Connection: close"];
  for (const [name, value] of Object.entries(headers)) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name) || /[\r\n\0]/.test(value)) {
      throw new TinkerError(`invalid request header ${JSON.stringify(name)}`);
    }
    if (name.toLowerCase() !== "host" && name.toLowerCase() !== "connection") lines.push(`${name}: ${value}`);
  }
  return `${lines.join("\r\n")}\r\n\r\n`;
}

function abortError(signal: AbortSignal): unknown {
  return signal.reason ?? Object.assign(new Error("The operation was aborted"), { name: "AbortError" });
}

/** A connection through a proxy: the proxy, the TCP socket to it, the `CONNECT` target, the request to send in it. */
interface Tunnel {
  server: ProxyServer;
  socket: net.Socket;
  authority: string;
  requestHead: string;
}

type BodyFraming =
  | { kind: "length"; remaining: number }
  | { kind: "chunked"; state: "size" | "data" | "data-end" | "trailer"; remaining: number; line: string }
  | { kind: "close" }
  | { kind: "none" };

/** One request on one socket: parses the head, then feeds the body to the consumer with backpressure. */
class Connection implements LeanResponse {
  status = 0;
  headers: Record<string, string> = {};
  readonly url: URL;
  /** The socket read from: the connection (or tunnel), or the TLS socket over a tunnel. */
  #socket: net.Socket;
  /** The TCP connection to the proxy, when there is one. */
  readonly #proxy: Tunnel | undefined;
  readonly #readBuffer = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
  /** Holds unprocessed bytes while paused, so the read buffer is free again. */
  readonly #spare = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
  /** The start of a response head split across reads (copied; heads are small). */
  #head: Buffer | undefined;
  #phase: "tunnel" | "head" | "body" | "done" = "head";
  #framing: BodyFraming = { kind: "none" };
  /** Unprocessed bytes (a view of `#spare`, or an overflow copy) while paused. */
  #pending: Buffer | undefined;
  /** Data that arrived while paused (should not happen with a paused socket; kept rather than lost). */
  #overflow: Buffer[] = [];
  #paused = false;
  #eof = false;
  #failure: unknown;
  #onChunk: ((chunk: Buffer) => void | Promise<void>) | undefined;
  #resolveHead: (res: LeanResponse) => void;
  #rejectHead: (err: unknown) => void;
  #bodySettle: { resolve: () => void; reject: (err: unknown) => void } | undefined;
  #settled = false;
  #headDelivered = false;
  /** The consumer's unsettled promise: a failure is reported only after it settled (its error wins). */
  #inflight: Promise<void> | undefined;
  readonly #signal: AbortSignal | undefined;
  readonly #onAbort = (): void => {
    this.#fail(abortError(this.#signal as AbortSignal));
  };

  constructor(
    target: URL,
    head: string,
    proxy: ProxyServer | undefined,
    options: LeanGetOptions,
    resolve: (res: LeanResponse) => void,
    reject: (err: unknown) => void,
  ) {
    this.url = target;
    this.#resolveHead = resolve;
    this.#rejectHead = reject;
    this.#signal = options.signal;
    const { host, port } = authorityOf(target);
    const secure = target.protocol === "https:";
    const onread = { buffer: this.#readBuffer, callback: (n: number, buf: Uint8Array): boolean => this.#onRead(n, buf) };
    if (proxy !== undefined) {
      const socket = net.connect({ host: proxy.host, port: proxy.port, onread });
      this.#proxy = { server: proxy, socket, authority: authorityOf(target).authority, requestHead: head };
      this.#socket = socket;
      this.#phase = "tunnel";
      socket.write(connectRequest(proxy, this.#proxy.authority));
    } else {
      this.#proxy = undefined;
      this.#socket = secure
        ? tls.connect({ host, port, servername: net.isIP(host) === 0 ? host : undefined, onread } as tls.ConnectionOptions)
        : net.connect({ host, port, onread });
      this.#socket.write(head);
    }
    this.#socket.setNoDelay(true);
    this.#listen(this.#socket);
    this.#signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  readonly #onEnd = (): void => {
    this.#eof = true;
    if (!this.#paused) this.#atEof();
  };
  readonly #onError = (err: Error): void => {
    const proxy = this.#proxy;
    if (proxy !== undefined && this.#phase === "tunnel") this.#fail(proxyConnectError(proxy.server, err));
    else this.#fail(err);
  };
  readonly #onClose = (): void => {
    // After a clean end while paused, the kept bytes are still to be processed (then #atEof settles).
    if (this.#eof && this.#paused) return;
    this.#fail(netError("the connection closed unexpectedly", "ECONNRESET"));
  };

  #listen(socket: net.Socket): void {
    socket.on("end", this.#onEnd);
    socket.on("error", this.#onError);
    socket.on("close", this.#onClose);
  }

  /** The proxy opened the tunnel: send the request (over TLS for an https host). */
  #tunnelOpen(rest: number): void {
    const proxy = this.#proxy as Tunnel;
    if (this.url.protocol !== "https:") {
      this.#phase = "head";
      proxy.socket.write(proxy.requestHead);
      return;
    }
    // Nothing may arrive from the host before the TLS hello; anything else is not a tunnel.
    if (rest > 0) throw netError(`the proxy ${proxy.server.display} sent data before the tunnel was used`, "EPROTO");
    this.#phase = "head";
    this.#paused = true; // the raw socket stops; TLS reads it from now on
    process.nextTick(() => {
      if (this.#settled) return;
      const { host } = authorityOf(this.url);
      proxy.socket.off("end", this.#onEnd);
      proxy.socket.off("error", this.#onError);
      proxy.socket.off("close", this.#onClose);
      proxy.socket.on("error", () => undefined); // reported by the TLS socket
      // `host` too: the certificate is checked against it (tls.connect would check "localhost" for an IP without it).
      const secure = tls.connect({ socket: proxy.socket, host, servername: net.isIP(host) === 0 ? host : undefined });
      this.#socket = secure;
      this.#paused = false;
      this.#listen(secure);
      secure.on("data", (chunk: Buffer) => {
        if (!this.#onRead(chunk.length, chunk)) secure.pause();
      });
      secure.write(proxy.requestHead);
    });
  }

  consume(onChunk: (chunk: Buffer) => void | Promise<void>): Promise<void> {
    if (this.#onChunk !== undefined || this.#bodySettle !== undefined)
      return Promise.reject(new TinkerError("the body is already being read"));
    return new Promise<void>((resolve, reject) => {
      this.#bodySettle = { resolve, reject };
      this.#onChunk = onChunk;
      if (this.#failure !== undefined) {
        reject(this.#failure);
        return;
      }
      if (this.#phase === "done") {
        resolve();
        return;
      }
      if (this.#settled) {
        reject(new TinkerError("the connection was closed before the body was read"));
        return;
      }
      this.#continue();
    });
  }

  async text(limit = 4096): Promise<string> {
    const parts: Buffer[] = [];
    let kept = 0;
    await this.consume((chunk) => {
      if (kept >= limit) return;
      const part = Buffer.from(chunk.subarray(0, limit - kept));
      kept += part.length;
      parts.push(part);
    });
    return Buffer.concat(parts).toString("utf8");
  }

  close(): void {
    this.#finish();
  }

  #onRead(n: number, buf: Uint8Array): boolean {
    const view = Buffer.from(buf.buffer, buf.byteOffset, n);
    if (this.#settled) return false;
    if (this.#paused) {
      this.#overflow.push(Buffer.from(view));
      return false;
    }
    this.#process(view);
    return !this.#paused;
  }

  /** Processes `data` until it is used up or the consumer asks to wait (then the rest is kept in `#pending`). */
  #process(data: Buffer): void {
    let offset = 0;
    try {
      while (offset < data.length && !this.#settled) {
        if (this.#phase === "tunnel") {
          offset = this.#readHead(data, offset);
          if ((this.#phase as string) !== "tunnel") {
            this.#tunnelOpen(data.length - offset);
            if (this.#paused) return;
          }
        } else if (this.#phase === "head") {
          offset = this.#readHead(data, offset);
          if ((this.#phase as string) === "body" && !this.#settled) {
            // The caller decides what to do with the body: wait for consume().
            this.#pause(data.subarray(offset));
            this.#headDelivered = true;
            this.#resolveHead(this);
            if (this.#framing.kind === "none" || (this.#framing.kind === "length" && this.#framing.remaining === 0)) this.#bodyDone();
            return;
          }
        } else if (this.#phase === "body") {
          const step = this.#readBody(data, offset);
          offset = step.offset;
          if (step.wait !== undefined) {
            this.#pause(data.subarray(offset));
            const wait = step.wait;
            this.#inflight = wait;
            wait.then(
              () => {
                this.#inflight = undefined;
                this.#continue();
              },
              (err: unknown) => {
                this.#inflight = undefined;
                this.#fail(err);
              },
            );
            return;
          }
        } else {
          return; // done: whatever follows the body is ignored
        }
      }
    } catch (err) {
      this.#fail(err);
    }
  }

  #pause(rest: Buffer): void {
    this.#paused = true;
    if (rest.length > 0) {
      // Copy into the spare buffer, so the read buffer may be reused; no allocation.
      const into = rest.buffer === this.#spare.buffer ? rest : this.#spare.subarray(0, rest.length);
      if (into !== rest) rest.copy(into);
      this.#pending = into;
    } else {
      this.#pending = undefined;
    }
  }

  /** Resumes after a pause: the kept bytes first, then anything that overflowed, then the socket. */
  #continue(): void {
    if (this.#settled || this.#onChunk === undefined) return;
    this.#paused = false;
    const pending = this.#pending;
    this.#pending = undefined;
    if (pending !== undefined && pending.length > 0) {
      this.#process(pending);
      if (this.#paused || this.#settled) return;
    }
    while (this.#overflow.length > 0) {
      this.#process(this.#overflow.shift() as Buffer);
      if (this.#paused || this.#settled) return;
    }
    if (this.#eof) this.#atEof();
    else this.#socket.resume();
  }

  #readHead(data: Buffer, offset: number): number {
    // Search for the blank line across what was kept so far and the new data.
    const slice = data.subarray(offset);
    const previous = this.#head;
    const joined = previous === undefined ? slice : Buffer.concat([previous, slice]);
    const end = joined.indexOf("\r\n\r\n", previous === undefined ? 0 : Math.max(0, previous.length - 3), "latin1");
    if (end < 0) {
      if (joined.length > MAX_HEAD_BYTES) throw netError("the download host sent a response head over 64 KiB", "EPROTO");
      this.#head = Buffer.from(joined);
      return data.length;
    }
    const used = end + 4 - (previous?.length ?? 0);
    this.#head = undefined;
    if (this.#phase === "tunnel") {
      const proxy = this.#proxy as Tunnel;
      const refusal = connectRefusal(proxy.server, proxy.authority, joined.toString("latin1", 0, end));
      if (refusal !== undefined) throw refusal;
      this.#phase = "head";
    } else this.#parseHead(joined.toString("latin1", 0, end));
    return offset + used;
  }

  #parseHead(text: string): void {
    const lines = text.split("\r\n");
    const m = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0] ?? "");
    if (m === null)
      throw netError(`the download host sent a malformed status line ${JSON.stringify((lines[0] ?? "").slice(0, 80))}`, "EPROTO");
    const status = Number(m[1]);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    if (status >= 100 && status < 200) return; // an interim answer (100 Continue): the real head follows
    this.status = status;
    this.headers = headers;
    this.#phase = "body";
    const te = headers["transfer-encoding"];
    const cl = headers["content-length"];
    if (status === 204 || status === 304) this.#framing = { kind: "none" };
    else if (te !== undefined && /(^|,)\s*chunked\s*$/i.test(te))
      this.#framing = { kind: "chunked", state: "size", remaining: 0, line: "" };
    else if (cl !== undefined) {
      const values = new Set(cl.split(",").map((v) => v.trim()));
      const only = [...values][0] ?? "";
      if (values.size !== 1 || !/^\d+$/.test(only))
        throw netError(`the download host sent an invalid Content-Length ${JSON.stringify(cl)}`, "EPROTO");
      this.#framing = { kind: "length", remaining: Number(only) };
    } else this.#framing = { kind: "close" };
  }

  /** Hands body bytes to the consumer; stops at a returned promise. */
  #readBody(data: Buffer, offset: number): { offset: number; wait?: Promise<void> } {
    const f = this.#framing;
    const onChunk = this.#onChunk as (chunk: Buffer) => void | Promise<void>;
    if (f.kind === "close") {
      const wait = onChunk(data.subarray(offset));
      return { offset: data.length, ...(isPromise(wait) ? { wait } : {}) };
    }
    if (f.kind === "length") {
      const n = Math.min(f.remaining, data.length - offset);
      f.remaining -= n;
      const wait = n > 0 ? onChunk(data.subarray(offset, offset + n)) : undefined;
      if (f.remaining === 0) {
        if (isPromise(wait)) return { offset: data.length, wait: wait.then(() => this.#bodyDone()) };
        this.#bodyDone();
        return { offset: data.length };
      }
      return { offset: offset + n, ...(isPromise(wait) ? { wait } : {}) };
    }
    if (f.kind === "none") {
      this.#bodyDone();
      return { offset: data.length };
    }
    // Chunked.
    while (offset < data.length) {
      if (f.state === "data") {
        const n = Math.min(f.remaining, data.length - offset);
        f.remaining -= n;
        if (f.remaining === 0) f.state = "data-end";
        const wait = onChunk(data.subarray(offset, offset + n));
        offset += n;
        if (isPromise(wait)) return { offset, wait };
        continue;
      }
      // A line: chunk size, the CRLF after data, or a trailer.
      const nl = data.indexOf(10, offset);
      const stop = nl < 0 ? data.length : nl + 1;
      f.line += data.toString("latin1", offset, stop);
      offset = stop;
      if (f.line.length > MAX_LINE_BYTES) throw netError("the download host sent a malformed chunked body", "EPROTO");
      if (nl < 0) break;
      const line = f.line.replace(/\r?\n$/, "");
      f.line = "";
      if (f.state === "data-end") {
        if (line !== "") throw netError("the download host sent a malformed chunked body", "EPROTO");
        f.state = "size";
      } else if (f.state === "size") {
        const size = /^([0-9a-fA-F]{1,15})\s*(;.*)?$/.exec(line);
        if (size === null) throw netError("the download host sent a malformed chunk size", "EPROTO");
        f.remaining = parseInt(size[1] as string, 16);
        f.state = f.remaining === 0 ? "trailer" : "data";
      } else if (line === "") {
        this.#bodyDone();
        return { offset: data.length };
      }
    }
    return { offset };
  }

  #atEof(): void {
    if (this.#settled) return;
    if (this.#phase === "tunnel") {
      const proxy = this.#proxy as Tunnel;
      this.#fail(netError(`the proxy ${proxy.server.display} closed the connection before answering CONNECT`, "ECONNRESET"));
    } else if (this.#phase === "head") {
      this.#fail(netError("the download host closed the connection before answering", "ECONNRESET"));
    } else if (this.#phase === "body") {
      const f = this.#framing;
      if (f.kind === "close" || f.kind === "none") this.#bodyDone();
      else if (f.kind === "length")
        this.#fail(netError(`the connection closed with ${f.remaining} bytes of the body missing`, "ECONNRESET"));
      else this.#fail(netError("the connection closed inside a chunked body", "ECONNRESET"));
    }
  }

  #bodyDone(): void {
    if (this.#phase !== "body") return;
    this.#phase = "done";
    const settle = this.#bodySettle;
    this.#finish();
    settle?.resolve();
  }

  #fail(err: unknown): void {
    if (this.#settled) return;
    this.#failure = err;
    const settleBody = this.#bodySettle;
    const wasHead = !this.#headDelivered;
    this.#finish();
    if (wasHead) this.#rejectHead(err);
    else if (settleBody !== undefined) {
      const inflight = this.#inflight;
      if (inflight === undefined) settleBody.reject(err);
      else
        inflight.then(
          () => settleBody.reject(err),
          (consumerErr: unknown) => settleBody.reject(consumerErr),
        );
    }
  }

  /** Releases the socket and listeners; nothing is delivered afterwards. */
  #finish(): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#signal?.removeEventListener("abort", this.#onAbort);
    this.#pending = undefined;
    this.#overflow = [];
    this.#socket.destroy();
    this.#proxy?.socket.destroy();
  }
}

/**
 * A failure of the connection or of the peer's HTTP: a plain `Error` with a `code`, like Node's own network
 * errors, so that callers retry it (TinkerErrors are reserved for mistakes that a retry cannot fix).
 */
function netError(message: string, code: "ECONNRESET" | "EPROTO"): Error {
  return Object.assign(new Error(message), { code });
}

function isPromise(x: unknown): x is Promise<void> {
  return typeof (x as Promise<void> | undefined)?.then === "function";
}
