/**
 * HTTP proxies: which proxy (if any) a URL goes through, and the `CONNECT` tunnel both HTTP clients use.
 *
 * The rules are curl's, so a URL is routed as `curl` routes it with the same environment, except loopback:
 *
 * - `https://` URLs use `https_proxy`, else `HTTPS_PROXY`; `http://` URLs use `http_proxy`, else `HTTP_PROXY`
 *   (the lower-case name wins when both are set; an empty value counts as unset; there is no fallback from one
 *   scheme's variable to the other's, and `ALL_PROXY` is not read). The explicit `proxy` option replaces both
 *   variables; `proxy: false` turns proxies off (NO_PROXY is then irrelevant).
 * - A proxy URL is `http://[user:password@]host[:port]` (scheme-less `host:port` means `http://`; the port
 *   defaults to 80). `https://` (TLS to the proxy) and SOCKS proxies are refused with a {@link ConfigurationError}.
 *   Credentials go to the proxy only, as `Proxy-Authorization: Basic …` on the `CONNECT` request.
 * - `no_proxy`, else `NO_PROXY` (also with the `proxy` option): a list separated by commas or spaces,
 *   case-insensitive. `*` alone: no URL uses a proxy. `example.com`, `.example.com` and `*.example.com` all
 *   match `example.com` and every name under it (`api.example.com`), never `badexample.com`. An IP address
 *   matches that address (`::1` or `[::1]`), a CIDR block (`10.0.0.0/8`) every address in it; names are never
 *   resolved. An entry may end in `:port`, and then only matches that port (the URL's port, or 80/443).
 * - Loopback (`localhost`, `*.localhost`, `127.0.0.0/8`, `::1`) is never sent to a proxy taken from the
 *   environment, as Go's `ProxyFromEnvironment` does (curl would send it): a machine with a corporate proxy set
 *   reaches `tinker-ts serve` directly without a NO_PROXY entry. The explicit `proxy` option applies to loopback
 *   too (NO_PROXY still applies).
 * - Every target, `http://` ones included, is reached through a `CONNECT host:port` tunnel (as undici's
 *   `ProxyAgent` does): one code path, the request and its headers never readable by the proxy, and a fixed-buffer
 *   socket for downloads. A proxy that only allows `CONNECT` to port 443 answers 403 for other ports: list such
 *   hosts in NO_PROXY.
 *
 * @module
 */
import net from "node:net";
import { ConfigurationError, ProxyError } from "../../core/errors.js";

/** Environment variables read here (`process.env` by default). */
export type ProxyEnv = Readonly<Record<string, string | undefined>>;

/** The `proxy` option: a proxy URL for every request, `false` for none, `undefined` for the environment. */
export type ProxyOption = string | false | undefined;

/** One proxy server. */
export interface ProxyServer {
  /** Host name or IP address (IPv6 without brackets). */
  readonly host: string;
  /** TCP port. */
  readonly port: number;
  /** `host:port` for messages: never the credentials. */
  readonly display: string;
  /** The `Proxy-Authorization` value (`Basic …`) when the URL has credentials. */
  readonly authorization: string | undefined;
  /** Identifies the proxy and its credentials (the key of connection pools); never print it. */
  readonly key: string;
}

/** Where each URL goes: the proxies by scheme and the NO_PROXY rules. Resolved once per client. */
export interface ProxySettings {
  /** Proxy of `http://` URLs. */
  readonly http: ProxyServer | undefined;
  /** Proxy of `https://` URLs. */
  readonly https: ProxyServer | undefined;
  /** Parsed NO_PROXY. */
  readonly noProxy: NoProxy;
  /** The passwords and `Proxy-Authorization` values, for redaction. */
  readonly secrets: readonly string[];
  /** Loopback targets go direct (proxies from the environment); `false` with the explicit `proxy` option. */
  readonly loopbackDirect?: boolean;
}

/** Parsed NO_PROXY entries. */
export interface NoProxy {
  /** `*`: nothing uses a proxy. */
  readonly all: boolean;
  /** Name and IP entries (`port` undefined: any port). */
  readonly entries: readonly { host: string; port: number | undefined }[];
  /** CIDR blocks. */
  readonly blocks: net.BlockList;
}

/**
 * Settings that never use a proxy (what `proxy: false` resolves to).
 *
 * @example
 * ```ts
 * proxyFor("https://example.com/", NO_PROXY_SETTINGS); // undefined
 * ```
 */
export const NO_PROXY_SETTINGS: ProxySettings = {
  http: undefined,
  https: undefined,
  noProxy: { all: true, entries: [], blocks: new net.BlockList() },
  secrets: [],
};

function envValue(env: ProxyEnv, lower: string): string | undefined {
  for (const name of [lower, lower.toUpperCase()]) {
    const v = env[name]?.trim();
    if (v !== undefined && v !== "") return v;
  }
  return undefined;
}

/**
 * Resolves the proxy settings of a client from its `proxy` option and the environment (see the module doc for
 * the rules).
 *
 * @throws {ConfigurationError} when a proxy URL is malformed, `https://` or SOCKS (the message names the
 *   variable or option, never the URL, which may hold a password).
 * @example
 * ```ts
 * const settings = resolveProxySettings(undefined, { HTTPS_PROXY: "http://proxy.corp:3128", NO_PROXY: ".corp" });
 * proxyFor("https://tinker.example.com/api", settings)?.display; // "proxy.corp:3128"
 * proxyFor("https://git.corp/x", settings); // undefined: NO_PROXY
 * ```
 */
export function resolveProxySettings(option: ProxyOption, env: ProxyEnv = process.env): ProxySettings {
  if (option === false) return NO_PROXY_SETTINGS;
  let http: ProxyServer | undefined;
  let https: ProxyServer | undefined;
  if (option !== undefined) {
    if (typeof option !== "string" || option.trim() === "") {
      throw new ConfigurationError("The proxy option must be a proxy URL such as http://proxy.example.com:3128, or false for no proxy.");
    }
    http = https = parseProxyUrl(option, "The proxy option");
  } else {
    const httpValue = envValue(env, "http_proxy");
    const httpsValue = envValue(env, "https_proxy");
    http = httpValue === undefined ? undefined : parseProxyUrl(httpValue, "HTTP_PROXY (or http_proxy)");
    https = httpsValue === undefined ? undefined : parseProxyUrl(httpsValue, "HTTPS_PROXY (or https_proxy)");
  }
  const secrets = [...secretsOf(option ?? envValue(env, "http_proxy")), ...secretsOf(option ?? envValue(env, "https_proxy"))];
  for (const p of [http, https]) if (p?.authorization !== undefined) secrets.push(p.authorization, p.authorization.slice(6));
  return {
    http,
    https,
    noProxy: parseNoProxy(envValue(env, "no_proxy") ?? ""),
    secrets: [...new Set(secrets)],
    loopbackDirect: option === undefined,
  };
}

/** The password of a proxy URL, raw and percent-decoded. */
function secretsOf(text: string | undefined): string[] {
  if (text === undefined) return [];
  try {
    const url = new URL(text.includes("://") ? text : `http://${text}`);
    if (url.password === "") return [];
    return [url.password, safeDecode(url.password)];
  } catch {
    return [];
  }
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/**
 * Parses a proxy URL (`http://[user:password@]host[:port]`; a scheme-less `host:port` means `http://`).
 *
 * @param source - Names where the URL came from in error messages, e.g. `"HTTPS_PROXY"`.
 * @throws {ConfigurationError} for a malformed URL, an `https://` or a SOCKS proxy; the URL is never quoted.
 * @example
 * ```ts
 * const p = parseProxyUrl("http://me:s3cret@proxy.corp:3128", "HTTPS_PROXY");
 * p.display; // "proxy.corp:3128"
 * p.authorization; // "Basic bWU6czNjcmV0"
 * ```
 */
export function parseProxyUrl(text: string, source: string): ProxyServer {
  const trimmed = text.trim();
  let url: URL;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed) ? trimmed : `http://${trimmed}`);
  } catch {
    throw new ConfigurationError(`${source} is not a valid proxy URL; expected http://[user:password@]host[:port].`);
  }
  if (url.protocol === "https:") {
    throw new ConfigurationError(
      `${source} is an https:// proxy URL (TLS to the proxy), which tinker-ts does not support; use the proxy's http:// address (traffic to https:// hosts stays encrypted end to end inside its CONNECT tunnel).`,
    );
  }
  if (url.protocol !== "http:") {
    throw new ConfigurationError(
      `${source} uses ${url.protocol.replace(/:$/, "")}://, which tinker-ts does not support; use an HTTP proxy (http://host:port).`,
    );
  }
  if (url.hostname === "") throw new ConfigurationError(`${source} has no host; expected http://[user:password@]host[:port].`);
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port === "" ? 80 : Number(url.port);
  const display = `${url.hostname}:${port}`;
  const authorization =
    url.username === "" && url.password === ""
      ? undefined
      : `Basic ${Buffer.from(`${safeDecode(url.username)}:${safeDecode(url.password)}`).toString("base64")}`;
  return { host, port, display, authorization, key: `${display}\n${authorization ?? ""}` };
}

/**
 * Parses a NO_PROXY value (see the module doc for the rules).
 *
 * @example
 * ```ts
 * const rules = parseNoProxy("localhost, .corp, 10.0.0.0/8, [::1]:8000");
 * ```
 */
export function parseNoProxy(text: string): NoProxy {
  const entries: { host: string; port: number | undefined }[] = [];
  const blocks = new net.BlockList();
  let all = false;
  for (const raw of text.toLowerCase().split(/[\s,]+/)) {
    if (raw === "") continue;
    if (raw === "*") {
      all = true;
      continue;
    }
    const cidr = /^\[?([0-9a-f.:]+)\]?\/(\d{1,3})$/.exec(raw);
    if (cidr !== null) {
      const family = net.isIP(cidr[1] as string);
      const prefix = Number(cidr[2]);
      if (family !== 0 && prefix <= (family === 4 ? 32 : 128)) blocks.addSubnet(cidr[1] as string, prefix, family === 4 ? "ipv4" : "ipv6");
      continue;
    }
    let host = raw;
    let port: number | undefined;
    const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(raw);
    const withPort = /^([^:]+):(\d+)$/.exec(raw);
    if (bracketed !== null) {
      host = bracketed[1] as string;
      port = bracketed[2] === undefined ? undefined : Number(bracketed[2]);
    } else if (withPort !== null) {
      host = withPort[1] as string;
      port = Number(withPort[2]);
    }
    host = host.replace(/^\*/, "").replace(/^\./, "").replace(/\.$/, "");
    if (host === "") continue;
    entries.push({ host: normalizeHost(host), port });
  }
  return { all, entries, blocks };
}

/** Lower-case, IPv6 in its canonical form (without brackets), IDN names in punycode. */
function normalizeHost(host: string): string {
  try {
    const h = new URL(`http://${net.isIPv6(host) ? `[${host}]` : host}`).hostname;
    return h.startsWith("[") ? h.slice(1, -1) : h;
  } catch {
    return host;
  }
}

/**
 * The proxy `url` goes through, or `undefined` for a direct connection.
 *
 * @example
 * ```ts
 * const settings = resolveProxySettings(undefined, { HTTP_PROXY: "http://proxy.corp:3128", NO_PROXY: "tinker.corp:8000" });
 * proxyFor("http://tinker.corp:8000/api/v1/healthz", settings); // undefined: NO_PROXY
 * proxyFor("http://tinker.corp:9000/", settings)?.port; // 3128
 * proxyFor("http://127.0.0.1:8000/", settings); // undefined: loopback never goes to a proxy from the environment
 * ```
 */
export function proxyFor(url: string | URL, settings: ProxySettings): ProxyServer | undefined {
  const target = typeof url === "string" ? new URL(url) : url;
  const proxy = target.protocol === "https:" ? settings.https : target.protocol === "http:" ? settings.http : undefined;
  if (proxy === undefined || settings.noProxy.all) return undefined;
  const host = (target.hostname.startsWith("[") ? target.hostname.slice(1, -1) : target.hostname).replace(/\.$/, "");
  const port = target.port === "" ? (target.protocol === "https:" ? 443 : 80) : Number(target.port);
  const family = net.isIP(host);
  if (settings.loopbackDirect === true && isLoopback(host, family)) return undefined;
  if (family !== 0 && settings.noProxy.blocks.check(host, family === 4 ? "ipv4" : "ipv6")) return undefined;
  for (const entry of settings.noProxy.entries) {
    if (entry.port !== undefined && entry.port !== port) continue;
    if (host === entry.host || (family === 0 && host.endsWith(`.${entry.host}`))) return undefined;
  }
  return proxy;
}

/** `localhost`, a name under `.localhost`, an IPv4 address in 127.0.0.0/8 or `::1` (also IPv4-mapped). */
function isLoopback(host: string, family: number): boolean {
  const h = host.toLowerCase();
  if (family === 0) return h === "localhost" || h.endsWith(".localhost");
  if (family === 4) return h.startsWith("127.");
  return h === "::1" || /^::ffff:127\./.test(h) || h === "::ffff:7f00:1";
}

/**
 * The host, port and `host:port` authority of a URL, as a `CONNECT` request names it (default ports filled in).
 *
 * @example
 * ```ts
 * authorityOf(new URL("https://[::1]/x")); // { host: "::1", port: 443, authority: "[::1]:443" }
 * ```
 */
export function authorityOf(target: URL): { host: string; port: number; authority: string } {
  const host = target.hostname.startsWith("[") ? target.hostname.slice(1, -1) : target.hostname;
  const port = target.port === "" ? (target.protocol === "https:" ? 443 : 80) : Number(target.port);
  return { host, port, authority: `${net.isIPv6(host) ? `[${host}]` : host}:${port}` };
}

/**
 * The `CONNECT` request for `authority` (`host:port`), with `Proxy-Authorization` when the proxy has credentials.
 *
 * @example
 * ```ts
 * connectRequest(parseProxyUrl("http://proxy.corp:3128", "HTTPS_PROXY"), "tinker.example.com:443");
 * // "CONNECT tinker.example.com:443 HTTP/1.1\r\nHost: tinker.example.com:443\r\n\r\n"
 * ```
 */
export function connectRequest(proxy: ProxyServer, authority: string): string {
  const auth = proxy.authorization === undefined ? "" : `Proxy-Authorization: ${proxy.authorization}\r\n`;
  return `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${auth}\r\n`;
}

/** The largest `CONNECT` answer head accepted. */
const MAX_CONNECT_HEAD_BYTES = 16 * 1024;

/**
 * Parses the proxy's answer head to `CONNECT` (without the blank line): `undefined` for 2xx (the tunnel is
 * open), else the error to throw: a {@link ProxyError} for a refusal, a retryable network error for garbage.
 *
 * @example
 * ```ts
 * const proxy = parseProxyUrl("http://proxy.corp:3128", "HTTPS_PROXY");
 * connectRefusal(proxy, "a.example:443", "HTTP/1.1 407 Proxy Authentication Required"); // a ProxyError, status 407
 * connectRefusal(proxy, "a.example:443", "HTTP/1.1 200 Connection established"); // undefined
 * ```
 */
export function connectRefusal(proxy: ProxyServer, authority: string, head: string): Error | undefined {
  const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(head.split("\r\n", 1)[0] ?? "");
  if (m === null) return netError(`the proxy ${proxy.display} sent a malformed answer to CONNECT`, "EPROTO");
  const status = Number(m[1]);
  if (status >= 200 && status < 300) return undefined;
  return new ProxyError({
    proxy: proxy.display,
    target: authority,
    status,
    statusText: m[2] ?? "",
    hadCredentials: proxy.authorization !== undefined,
  });
}

/**
 * Whether a failure from the proxy is final (not worth retrying): a refusal other than 408, 429 and 5xx.
 *
 * @example
 * ```ts
 * isFinalProxyError(new ProxyError({ proxy: "p:3128", target: "a:443", status: 407 })); // true
 * ```
 */
export function isFinalProxyError(err: unknown): boolean {
  return err instanceof ProxyError && err.status !== 408 && err.status !== 429 && err.status < 500;
}

/** Options of {@link openTunnel}. */
export interface TunnelOptions {
  /** Gives up (a retryable `ETIMEDOUT`) when the proxy has not answered within this many ms (default 60 000). */
  timeoutMs?: number;
}

/**
 * Connects to `proxy` and opens a `CONNECT` tunnel to `target`'s host and port. Resolves with the socket once
 * the proxy answered 2xx (bytes written to it then reach the target); rejects with a {@link ProxyError} when the
 * proxy refuses, or a network error (with `code`, naming the proxy) when it cannot be reached.
 *
 * @example
 * ```ts
 * const socket = await openTunnel(parseProxyUrl("http://127.0.0.1:3128", "HTTP_PROXY"), new URL("http://127.0.0.1:8000/"));
 * socket.end("GET /api/v1/healthz HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nConnection: close\r\n\r\n");
 * ```
 */
export function openTunnel(proxy: ProxyServer, target: URL, options: TunnelOptions = {}): Promise<net.Socket> {
  const { authority } = authorityOf(target);
  return new Promise<net.Socket>((resolve, reject) => {
    const socket = net.connect({ host: proxy.host, port: proxy.port });
    let head = Buffer.alloc(0);
    const timer = setTimeout(
      () => fail(netError(`the proxy ${proxy.display} did not answer CONNECT within ${options.timeoutMs ?? 60_000} ms`, "ETIMEDOUT")),
      options.timeoutMs ?? 60_000,
    );
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("error", onError);
      socket.off("end", onEnd);
    };
    const fail = (err: Error): void => {
      cleanup();
      socket.destroy();
      reject(err);
    };
    const onError = (err: NodeJS.ErrnoException): void => fail(proxyConnectError(proxy, err));
    const onEnd = (): void => fail(netError(`the proxy ${proxy.display} closed the connection before answering CONNECT`, "ECONNRESET"));
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) {
        if (head.length > MAX_CONNECT_HEAD_BYTES) fail(netError(`the proxy ${proxy.display} sent an answer head over 16 KiB`, "EPROTO"));
        return;
      }
      const refusal = connectRefusal(proxy, authority, head.toString("latin1", 0, end));
      if (refusal !== undefined) {
        fail(refusal);
        return;
      }
      // Nothing may come from the target before the client spoke: anything else is not a tunnel.
      if (end + 4 < head.length) {
        fail(netError(`the proxy ${proxy.display} sent data before the tunnel was used`, "EPROTO"));
        return;
      }
      // The stream stays flowing: the caller attaches its readers in this same tick, before any more I/O.
      cleanup();
      socket.setNoDelay(true);
      resolve(socket);
    };
    socket.on("data", onData);
    socket.on("error", onError);
    socket.on("end", onEnd);
    socket.write(connectRequest(proxy, authority));
  });
}

/**
 * The proxy could not be reached: a network error that keeps the `code` (so it is retried like any other) and
 * names the proxy in `proxy` (what {@link APIConnectionError} looks for to say "check the proxy").
 *
 * @example
 * ```ts
 * const proxy = parseProxyUrl("http://proxy.corp:3128", "HTTPS_PROXY");
 * proxyConnectError(proxy, Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" })).message;
 * // "could not connect to the proxy proxy.corp:3128: connect ECONNREFUSED"
 * ```
 */
export function proxyConnectError(proxy: ProxyServer, err: Error): Error {
  const code = (err as NodeJS.ErrnoException).code;
  return Object.assign(new Error(`could not connect to the proxy ${proxy.display}: ${err.message}`, { cause: err }), {
    code,
    proxy: proxy.display,
  });
}

/**
 * A network failure with a `code`, retried like Node's own.
 *
 * @example
 * ```ts
 * throw netError("the proxy proxy.corp:3128 closed the connection before answering CONNECT", "ECONNRESET");
 * ```
 */
export function netError(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

/** The settings from `process.env`, re-resolved when the variables change. */
let fromEnv: { text: string; settings: ProxySettings } | undefined;

/**
 * The proxy settings of `process.env` (for code that has no client's settings); cached until the variables change.
 *
 * @throws {ConfigurationError} as {@link resolveProxySettings} does.
 * @example
 * ```ts
 * proxyFor("https://example.com/", envProxySettings()); // HTTPS_PROXY, unless NO_PROXY matches
 * ```
 */
export function envProxySettings(): ProxySettings {
  const env = process.env;
  const text = ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY"].map((n) => env[n] ?? "").join("\n");
  if (fromEnv?.text !== text) fromEnv = { text, settings: resolveProxySettings(undefined, env) };
  return fromEnv.settings;
}
