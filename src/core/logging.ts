/**
 * Logging and request hooks: the {@link Logger} a client writes to, its {@link LogLevel}, and the events of the
 * `onRequest` / `onResponse` hooks (one pair per HTTP attempt). No message or event ever holds the API key, a
 * JWT, a cookie or a signed URL's query.
 *
 * @module
 */

/**
 * How much a client logs: `"debug"` (one line per HTTP attempt, and details), `"info"`, `"warn"` (the default:
 * paused queues, failing heartbeats, failed refreshes), `"error"`, or `"off"`. Set it with the `logLevel` option or
 * the `TINKER_LOG` environment variable (the option wins).
 *
 * @example
 * ```ts
 * const level: LogLevel = "debug";
 * await using verbose = new ServiceClient({ logLevel: level }); // TINKER_BASE_URL, TINKER_API_KEY
 * ```
 */
export type LogLevel = "debug" | "info" | "warn" | "error" | "off";

/**
 * Where a client's log lines go (default: stderr, each line prefixed `[tinker-ts]`). Every method is optional: a
 * level without its own method goes to `warn`, and is dropped when there is no `warn` either, so a `{ warn }`
 * logger receives everything its level lets through and `console` works as is. Which lines arrive is decided by
 * `logLevel` / `TINKER_LOG`. Messages are already redacted.
 *
 * @example
 * ```ts
 * const lines: string[] = [];
 * const logger: Logger = { debug: (m) => lines.push(m), warn: (m) => console.warn(m) };
 * await using client = new ServiceClient({ logger, logLevel: "debug" });
 * ```
 */
export interface Logger {
  /** One line per HTTP attempt (method, path, status, attempt, ms, request id) and other details. */
  debug?(message: string): void;
  /** Notable but expected events. */
  info?(message: string): void;
  /** Something the user should know about (e.g. a paused queue, failing heartbeats). */
  warn?(message: string): void;
  /** Something failed. */
  error?(message: string): void;
}

/**
 * One HTTP attempt about to be sent, as given to the `onRequest` hook: start a span here. The same object is
 * {@link ResponseEvent.request} of the matching `onResponse` call.
 *
 * @example
 * ```ts
 * const onRequest = (e: RequestEvent): void => console.log(`${e.method} ${e.path} attempt ${e.attempt}`);
 * await using client = new ServiceClient({ onRequest });
 * ```
 */
export interface RequestEvent {
  /** HTTP method, e.g. `"POST"`. */
  readonly method: string;
  /**
   * The URL, with sensitive-looking query values (`token`, `signature`, `key`, ...) replaced by `[REDACTED]`; for a
   * download, without its (signed) query at all.
   */
  readonly url: string;
  /** The URL's path, e.g. `"/api/v1/forward_backward"`. */
  readonly path: string;
  /** 1 for the first attempt, 2 for the first retry, ... */
  readonly attempt: number;
  /** `"api"` for a call to the Tinker server, `"download"` for a GET of a checkpoint archive. */
  readonly kind: "api" | "download";
  /**
   * The request headers, names in lower case, without credentials: `x-api-key`, `authorization`,
   * `proxy-authorization` and `cookie` are left out.
   */
  readonly headers: Readonly<Record<string, string>>;
}

/**
 * How one HTTP attempt ended, as given to the `onResponse` hook: end the span of {@link ResponseEvent.request}.
 * Called once per attempt, also when it failed without a response (`status` undefined, `error` set).
 *
 * @example
 * ```ts
 * const onResponse = (e: ResponseEvent): void => {
 *   console.log(`${e.request.method} ${e.request.path} ${e.status ?? e.error} in ${e.ms} ms`, e.requestId ?? "");
 *   if (e.retry) console.log(`retrying in ${e.retry.delayMs} ms: ${e.retry.reason}`);
 * };
 * await using client = new ServiceClient({ onResponse });
 * ```
 */
export interface ResponseEvent {
  /** The event the matching `onRequest` call received (the same object). */
  readonly request: RequestEvent;
  /** HTTP status, or `undefined` when no response arrived. */
  readonly status: number | undefined;
  /** Time from sending to the response headers (or the failure), in ms. */
  readonly ms: number;
  /** The server's request id (`x-request-id` header), when it sent one. */
  readonly requestId: string | undefined;
  /** Why no response arrived, e.g. `"connection error (ECONNRESET)"` or `"timed out after 60000 ms"`. */
  readonly error?: string;
  /** Set when this attempt is retried: why, and after how long. */
  readonly retry?: { readonly reason: string; readonly delayMs: number };
}

/**
 * The logging and hook options every client takes (`ServiceClient`, `RestClient.fromEnv`).
 *
 * @example
 * ```ts
 * const observability: LoggingOptions = { logLevel: "info", onResponse: (e) => void e.ms };
 * await using client = new ServiceClient({ ...observability });
 * ```
 */
export interface LoggingOptions {
  /** Where log lines go (default: stderr with a `[tinker-ts]` prefix). */
  logger?: Logger;
  /** How much is logged (default: `TINKER_LOG`, else `"warn"`). */
  logLevel?: LogLevel;
  /** Called before each HTTP attempt. An exception it throws is logged (once) and ignored. */
  onRequest?: (event: RequestEvent) => void;
  /** Called after each HTTP attempt. An exception it throws is logged (once) and ignored. */
  onResponse?: (event: ResponseEvent) => void;
}
