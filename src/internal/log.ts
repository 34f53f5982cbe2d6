/**
 * The log of a client ({@link Log}: level filter, redaction, the default stderr sink) and the per-attempt request
 * observer ({@link RequestObserver}: debug lines and the `onRequest` / `onResponse` hooks) that the retry layer and
 * the download call. When the level is above `debug` and no hook is set there is no observer at all, so the hot
 * path builds no event object.
 *
 * @module
 */
import { InvalidArgumentError } from "../core/errors.js";
import type { Logger, LoggingOptions, LogLevel, RequestEvent, ResponseEvent } from "../core/logging.js";
import { redact, sanitizeUrl } from "./redact.js";

/** The accepted levels, most verbose first. */
export const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error", "off"];
/** The level when neither `logLevel` nor `TINKER_LOG` says otherwise. */
export const DEFAULT_LOG_LEVEL: LogLevel = "warn";
/** The environment variable that sets the level when the `logLevel` option is not given. */
export const LOG_LEVEL_ENV = "TINKER_LOG";

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3, off: 4 };

/** Headers never shown in a request event or log line. */
const SECRET_HEADERS = new Set(["x-api-key", "authorization", "proxy-authorization", "cookie", "set-cookie"]);

/**
 * The level named by `value` (case and surrounding spaces ignored), or `undefined` when it names none.
 *
 * @example
 * ```ts
 * parseLogLevel(" DEBUG "); // "debug"
 * parseLogLevel("verbose"); // undefined
 * ```
 */
export function parseLogLevel(value: unknown): LogLevel | undefined {
  if (typeof value !== "string") return undefined;
  const v = value.trim().toLowerCase();
  return (LOG_LEVELS as readonly string[]).includes(v) ? (v as LogLevel) : undefined;
}

/**
 * The default sink: every level to stderr, one line each, as `[tinker-ts] <level>: <message>`.
 *
 * @example
 * ```ts
 * stderrLogger().warn("heartbeats failing"); // stderr: "[tinker-ts] warn: heartbeats failing"
 * ```
 */
export function stderrLogger(write: (text: string) => unknown = (t) => process.stderr.write(t)): Required<Logger> {
  // Older messages carry their own "tinker-ts: " prefix; the sink's prefix replaces it.
  const line = (level: string) => (m: string) => void write(`[tinker-ts] ${level}: ${m.replace(/^tinker-ts: /, "")}\n`);
  return { debug: line("debug"), info: line("info"), warn: line("warn"), error: line("error") };
}

/** Settings of {@link Log}. */
export interface LogOptions {
  /** Where lines go (default {@link stderrLogger}). */
  logger?: Logger | undefined;
  /** The level (default: `env.TINKER_LOG`, else `"warn"`). */
  logLevel?: LogLevel | undefined;
  /** Where `TINKER_LOG` is read (default: none read). */
  env?: NodeJS.ProcessEnv | undefined;
  /** Strings removed from every line. */
  secrets?: readonly (string | undefined)[];
}

/**
 * A client's log: drops lines below its level, redacts the rest and hands them to the {@link Logger} (a level
 * without its own method goes to `warn`). An exception from the logger is ignored.
 *
 * @throws {InvalidArgumentError} when `logLevel` is not one of the levels (an invalid `TINKER_LOG` only warns).
 * @example
 * ```ts
 * const log = new Log({ logLevel: "debug", env: process.env });
 * log.debug("details"); // "[tinker-ts] debug: details" on stderr
 * ```
 */
export class Log {
  /** The level in force. */
  readonly level: LogLevel;
  /** Secrets removed from every line (replaceable: a client hands over its transport's list once it has one). */
  secrets: readonly (string | undefined)[];
  readonly #logger: Logger;

  constructor(options: LogOptions = {}) {
    this.#logger = options.logger ?? stderrLogger();
    this.secrets = options.secrets ?? [];
    if (options.logLevel !== undefined) {
      const level = parseLogLevel(options.logLevel);
      if (level === undefined || level !== options.logLevel) {
        throw new InvalidArgumentError(`logLevel must be one of ${LOG_LEVELS.join(", ")}; got ${JSON.stringify(options.logLevel)}.`);
      }
      this.level = level;
      return;
    }
    const raw = options.env?.[LOG_LEVEL_ENV];
    const fromEnv = raw === undefined || raw.trim() === "" ? undefined : parseLogLevel(raw);
    this.level = fromEnv ?? DEFAULT_LOG_LEVEL;
    if (raw !== undefined && raw.trim() !== "" && fromEnv === undefined) {
      this.warn(`${LOG_LEVEL_ENV}=${JSON.stringify(raw)} is not a log level (${LOG_LEVELS.join(", ")}); using "${DEFAULT_LOG_LEVEL}".`);
    }
  }

  /** Whether lines of `level` are written. */
  enabled(level: Exclude<LogLevel, "off">): boolean {
    return RANK[level] >= RANK[this.level];
  }

  /** Writes a debug line. */
  debug(message: string): void {
    this.#write("debug", message);
  }

  /** Writes an info line. */
  info(message: string): void {
    this.#write("info", message);
  }

  /** Writes a warning. */
  warn(message: string): void {
    this.#write("warn", message);
  }

  /** Writes an error line. */
  error(message: string): void {
    this.#write("error", message);
  }

  #write(level: Exclude<LogLevel, "off">, message: string): void {
    if (RANK[level] < RANK[this.level]) return;
    const logger = this.#logger;
    try {
      const own = logger[level];
      if (own !== undefined) own.call(logger, redact(message, this.secrets));
      else logger.warn?.(redact(message, this.secrets));
    } catch {
      // A failing logger must not break the request that logs.
    }
  }
}

/** One attempt in flight, between {@link RequestObserver.start} and {@link RequestObserver.end}. */
export interface ObservedAttempt {
  /** The event given to `onRequest`. */
  readonly event: RequestEvent;
  /** `performance.now()` when it was sent. */
  readonly sentAt: number;
  /** `performance.now()` when its response headers (or its failure) arrived; set by the caller. */
  doneAt?: number;
}

/** How an attempt ended, as the caller knows it. */
export interface AttemptEnd {
  /** Status, when a response arrived. */
  status?: number | undefined;
  /** The response headers (for the request id). */
  headers?: Headers | Readonly<Record<string, string>> | undefined;
  /** Why no response arrived. */
  error?: string | undefined;
  /** Set when the attempt is retried. */
  retry?: { reason: string; delayMs: number } | undefined;
}

/**
 * Reports each HTTP attempt: a debug line (when the level is `debug`) and the `onRequest` / `onResponse` hooks.
 * Get one with {@link RequestObserver.create}, which returns `undefined` when nothing would listen.
 *
 * @example
 * ```ts
 * const observer = RequestObserver.create(new Log({ logLevel: "debug" }), {}, []);
 * const attempt = observer?.start("GET", "http://127.0.0.1:8080/api/v1/healthz", new Headers(), 1, "api");
 * if (attempt) observer?.end(attempt, { status: 200, headers: new Headers({ "x-request-id": "r-1" }) });
 * ```
 */
export class RequestObserver {
  readonly #log: Log;
  readonly #debug: boolean;
  readonly #onRequest: LoggingOptions["onRequest"];
  readonly #onResponse: LoggingOptions["onResponse"];
  readonly #secrets: readonly (string | undefined)[];
  readonly #warned = new Set<string>();

  private constructor(log: Log, hooks: Pick<LoggingOptions, "onRequest" | "onResponse">, secrets: readonly (string | undefined)[]) {
    this.#log = log;
    this.#debug = log.enabled("debug");
    this.#onRequest = hooks.onRequest;
    this.#onResponse = hooks.onResponse;
    this.#secrets = secrets;
  }

  /** An observer, or `undefined` when the level is above `debug` and no hook is set (then nothing is built per attempt). */
  static create(
    log: Log,
    hooks: Pick<LoggingOptions, "onRequest" | "onResponse">,
    secrets: readonly (string | undefined)[],
  ): RequestObserver | undefined {
    checkHook(hooks.onRequest, "onRequest");
    checkHook(hooks.onResponse, "onResponse");
    if (!log.enabled("debug") && hooks.onRequest === undefined && hooks.onResponse === undefined) return undefined;
    return new RequestObserver(log, hooks, secrets);
  }

  /** Records an attempt about to be sent and calls `onRequest`. `attempt` is 1-based. */
  start(
    method: string,
    url: string,
    headers: Headers | Readonly<Record<string, string>>,
    attempt: number,
    kind: RequestEvent["kind"],
  ): ObservedAttempt {
    const safe = kind === "download" ? redact(withoutQuery(url), this.#secrets) : sanitizeUrl(url, this.#secrets);
    const event: RequestEvent = { method, url: safe, path: pathOf(safe), attempt, kind, headers: this.#safeHeaders(headers) };
    const observed: ObservedAttempt = { event, sentAt: performance.now() };
    if (this.#onRequest !== undefined) this.#call("onRequest", this.#onRequest, event);
    return observed;
  }

  /** Writes a debug line about the requests (e.g. why a download is resumed), redacted; only at level `debug`. */
  note(message: string): void {
    if (this.#debug) this.#log.debug(redact(message, this.#secrets));
  }

  /** Reports how `attempt` ended: the debug line and `onResponse`. */
  end(attempt: ObservedAttempt, end: AttemptEnd): void {
    const ms = Math.round((attempt.doneAt ?? performance.now()) - attempt.sentAt);
    const requestId = headerOf(end.headers, "x-request-id");
    const event: ResponseEvent = {
      request: attempt.event,
      status: end.status,
      ms,
      requestId,
      ...(end.error === undefined ? {} : { error: redact(end.error, this.#secrets) }),
      ...(end.retry === undefined
        ? {}
        : { retry: { reason: redact(end.retry.reason, this.#secrets), delayMs: Math.round(end.retry.delayMs) } }),
    };
    if (this.#debug) this.#log.debug(debugLine(event));
    if (this.#onResponse !== undefined) this.#call("onResponse", this.#onResponse, event);
  }

  #safeHeaders(headers: Headers | Readonly<Record<string, string>>): Record<string, string> {
    const out: Record<string, string> = {};
    const entries = headers instanceof Headers ? headers.entries() : Object.entries(headers);
    for (const [name, value] of entries) {
      const lower = name.toLowerCase();
      if (!SECRET_HEADERS.has(lower)) out[lower] = redact(value, this.#secrets);
    }
    return out;
  }

  #call<E>(name: string, hook: (event: E) => unknown, event: E): void {
    const failed = (err: unknown): void => {
      if (this.#warned.has(name)) return;
      this.#warned.add(name);
      const why = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      this.#log.warn(`the ${name} hook threw (${why}); the request goes on, and further failures of this hook are not logged.`);
    };
    try {
      const out = hook(event);
      if (out !== null && typeof out === "object" && typeof (out as { then?: unknown }).then === "function") {
        (out as PromiseLike<unknown>).then(undefined, failed);
      }
    } catch (err) {
      failed(err);
    }
  }
}

function checkHook(hook: unknown, name: string): void {
  if (hook !== undefined && typeof hook !== "function") {
    throw new InvalidArgumentError(`${name} must be a function, got ${typeof hook}.`);
  }
}

/** `GET /api/v1/x?limit=2 → 200 (3 ms, attempt 1, request id r-1)`, with the retry when there is one. */
function debugLine(e: ResponseEvent): string {
  const r = e.request;
  const target = r.kind === "download" ? `download ${r.path}` : pathAndQuery(r.url);
  const outcome = e.status === undefined ? (e.error ?? "no response") : String(e.status);
  const id = e.requestId === undefined ? "" : `, request id ${e.requestId}`;
  const retry = e.retry === undefined ? "" : `; retrying in ${e.retry.delayMs} ms (${e.retry.reason})`;
  return `${r.method} ${target} → ${outcome} (${e.ms} ms, attempt ${r.attempt}${id})${retry}`;
}

function headerOf(headers: Headers | Readonly<Record<string, string>> | undefined, name: string): string | undefined {
  if (headers === undefined) return undefined;
  const v = headers instanceof Headers ? headers.get(name) : headers[name];
  return v === null || v === undefined || v === "" ? undefined : v;
}

function withoutQuery(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return url.replace(/[?#].*$/s, "");
  }
}

function pathOf(url: string): string {
  try {
    return new URL(url).pathname;
  } catch {
    return "";
  }
}

function pathAndQuery(url: string): string {
  try {
    const u = new URL(url);
    return `${u.pathname}${u.search}`;
  } catch {
    return url;
  }
}
