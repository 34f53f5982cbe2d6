/**
 * The one place that talks HTTP to a Tinker server: an openapi-fetch client typed by the spec, with the
 * retry policy ({@link createRetryingFetch}), timeouts, aborts, error mapping and response validation.
 *
 * @module
 */
import { createRequire } from "node:module";
import createClient, { defaultPathSerializer, type Client } from "openapi-fetch";
import type { z } from "zod";
import type { paths } from "../../generated/schema.js";
import {
  APIConnectionError,
  APIError,
  APITimeoutError,
  APIUserAbortError,
  ConfigurationError,
  InvalidArgumentError,
  ResponseValidationError,
  TinkerError,
} from "../core/errors.js";
import type { LoggingOptions } from "../core/logging.js";
import { sendAuthenticated, type RequestAuth } from "./auth.js";
import { Log, RequestObserver } from "./log.js";
import { redact, sanitizeUrl } from "./redact.js";
import {
  DEFAULT_TIMEOUT_MS,
  createRetryingFetch,
  exhaustionNote,
  retryInfoOf,
  type RetryEvent,
  type RetryInfo,
  type RetryRequestOptions,
  type RetryingFetch,
} from "./retry.js";
import type { SleepFn } from "./sleep.js";
import { createNodeHttpFetch } from "./net/node-fetch.js";
import { resolveProxySettings, type ProxySettings } from "./net/proxy.js";

function readPackageVersion(): string {
  const require = createRequire(import.meta.url);
  // src/internal/transport.ts → ../../package.json; dist/src/internal/transport.js → ../../../package.json
  for (const candidate of ["../../package.json", "../../../package.json"]) {
    try {
      const pkg = require(candidate) as { name?: unknown; version?: unknown };
      if (pkg.name === "tinker-ts" && typeof pkg.version === "string") return pkg.version;
    } catch {
      // try the next location
    }
  }
  return "0.0.0-unknown";
}

/** The tinker-ts package version (from package.json). */
export const SDK_VERSION: string = readPackageVersion();

/** The `User-Agent` sent on every request: `tinker-ts/<version> (node <process.version>)`. */
export const USER_AGENT = `tinker-ts/${SDK_VERSION} (node ${process.version})`;

/** Client-wide transport settings (with the {@link LoggingOptions}: `logger`, `logLevel`, `onRequest`, `onResponse`). */
export interface TransportConfig extends LoggingOptions {
  /** Server base URL, e.g. `http://127.0.0.1:8080` or `https://host/services/tinker-prod`. */
  baseUrl: string;
  /** API key, sent as `X-API-Key` and never included in errors. Optional only with {@link TransportConfig.auth}. */
  apiKey?: string | undefined;
  /** Chooses the `X-API-Key` of each request (JWT mode, `TINKER_CREDENTIAL_CMD`); see `internal/auth.ts`. */
  auth?: TransportAuth;
  /** Secrets every error redacts (shared with `auth`, which appends the tokens it obtains). */
  secrets?: string[];
  /** Caps the retries after the first attempt (default: no cap; `retryBudgetMs` ends them). */
  maxRetries?: number;
  /** How long a request is retried from its first attempt, in ms (default 300 000). */
  retryBudgetMs?: number;
  /** Per-attempt time limit in ms (default 60 000). */
  timeoutMs?: number;
  /** How long 402 (billing) answers are waited out per incident, in ms (default 3 600 000); a function is asked at each 402. */
  billingMaxPauseMs?: number | (() => number);
  /** Called before each wait for a retry; the CLI prints a "retrying…" line from it. */
  onRetry?: (event: RetryEvent) => void;
  /** @internal The client's log, when the client built it (then `logger` and `logLevel` are not read). */
  log?: Log;
  /** The fetch each attempt goes through (default: node:http with keep-alive; pass `globalThis.fetch` to use undici). */
  fetch?: typeof globalThis.fetch;
  /** Extra headers on every request (cannot override `X-API-Key`). */
  defaultHeaders?: Record<string, string>;
  /** HTTP proxy of every request (and of downloads from a RestClient on it); `false`: none; default: the environment. */
  proxy?: string | false;
  /** Where `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` are read (default `process.env`). */
  proxyEnv?: Readonly<Record<string, string | undefined>>;
  /** Sleep between retries; inject in tests. */
  sleep?: SleepFn;
  /** Clock of the retry budget (ms, default `Date.now`); inject with `sleep` in tests. */
  now?: () => number;
  /** Random source in [0, 1) for backoff jitter; inject in tests. */
  random?: () => number;
}

/** How a {@link Transport} picks each request's `X-API-Key` (implemented by `ClientAuth`, `internal/auth.ts`). */
export interface TransportAuth extends RequestAuth {
  /** The credential for a request to `path`. */
  credentialFor(path: string): Promise<string>;
  /** The JWT that carries the caller's identity (JWT mode, or a JWT API key), if any. */
  identityToken(): Promise<string | undefined>;
}

/** A fetch redirect mode. */
export type RedirectMode = "follow" | "manual" | "error";

/** Per-call settings of the transport: a method's {@link RequestOptions}, the idempotency key, and extra headers. */
export interface CallOptions extends RetryRequestOptions {
  /** Extra headers for this call. */
  headers?: Record<string, string>;
}

/** Options of {@link Transport.callRaw}. */
export interface RawCallOptions extends CallOptions {
  /** Statuses accepted besides 2xx, e.g. `[302]` for the archive redirect. */
  okStatuses?: readonly number[];
  /** Redirect mode; `"manual"` returns every 3xx as is (default: follow same-origin redirects only). */
  redirect?: RedirectMode;
  /**
   * Statuses returned (not thrown) when an earlier attempt's answer was lost, so the earlier attempt may have
   * done the work: e.g. 409 "already public" on publish, 404 on delete. The caller treats them as success.
   */
  okAfterLostAnswer?: readonly number[];
}

/**
 * What a {@link Transport.call} callback spreads into its openapi-fetch options:
 * `transport.api.POST(path, { body, ...init })`.
 */
export interface RequestInitExtras {
  /** The caller's abort signal. */
  signal?: AbortSignal;
  /** The retrying fetch for this call. */
  fetch: (req: Request) => Promise<Response>;
  /** Per-call headers. */
  headers: Record<string, string>;
  /** How openapi-fetch reads a 2xx body: `"text"` for {@link Transport.call}, `"stream"` (untouched) for {@link Transport.callRaw}. */
  parseAs: "text" | "stream" | "arrayBuffer";
  /** Redirect mode, when the caller set one. */
  redirect?: RedirectMode;
}

/** The shape of an openapi-fetch result, as far as the transport needs it. */
export interface FetchResult {
  data?: unknown;
  error?: unknown;
  response: Response;
}

/** An answer read once by {@link Transport.answer}, whatever its status. */
export interface TransportAnswer {
  /** HTTP status (after retries). */
  status: number;
  /** Response headers. */
  headers: Headers;
  /** Parsed JSON; the text when it is not JSON; `undefined` when empty. */
  body: unknown;
  /** Set when a 2xx body is not JSON: the parse error (`body` then holds the text). */
  jsonError?: unknown;
  /** The body of a 2xx `application/x-protobuf` answer (then `body` is undefined). */
  protobuf?: Uint8Array;
  /** HTTP method of the request. */
  method: string | undefined;
  /** URL of the (last) request. */
  url: string | undefined;
  /** How many attempts produced the answer. */
  attempts: number | undefined;
  /** How the retries went (whether they ran out, whether an earlier attempt may have been applied). */
  retry?: RetryInfo | undefined;
}

/** A callback that performs one openapi-fetch call with the given extras. */
export type TransportCallback = (init: RequestInitExtras) => Promise<FetchResult>;

/**
 * Normalises a base URL: trims it, requires `http:`/`https:`, refuses credentials, queries and fragments,
 * and removes trailing slashes (`http://h:1/prefix/` → `http://h:1/prefix`).
 *
 * @throws {ConfigurationError} when the URL is empty, not absolute, not http(s), or has credentials, a query or a fragment.
 * @example
 * ```ts
 * normalizeBaseUrl("http://127.0.0.1:8080/"); // "http://127.0.0.1:8080"
 * ```
 */
export function normalizeBaseUrl(input: string): string {
  const expected = `Expected an absolute http(s) URL such as "http://127.0.0.1:8080" or "https://host/prefix"; pass baseUrl or set TINKER_BASE_URL.`;
  if (typeof input !== "string" || input.trim() === "") throw new ConfigurationError(`The base URL is empty. ${expected}`);
  let url: URL;
  try {
    url = new URL(input.trim());
  } catch {
    throw new ConfigurationError(`Invalid base URL ${JSON.stringify(input)}: not an absolute URL. ${expected}`);
  }
  if (url.username !== "" || url.password !== "") {
    throw new ConfigurationError(
      `Invalid base URL ${JSON.stringify(sanitizeUrl(url.toString()))}: it must not contain credentials; pass the API key as apiKey (or TINKER_API_KEY).`,
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ConfigurationError(`Invalid base URL ${JSON.stringify(input)}: the scheme must be http or https. ${expected}`);
  }
  if (url.search !== "" || url.hash !== "") {
    throw new ConfigurationError(
      `Invalid base URL ${JSON.stringify(sanitizeUrl(url.toString()))}: it must not have a query or fragment. ${expected}`,
    );
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, "")}`;
}

/**
 * Percent-encodes one path segment like `encodeURIComponent` (so `/`, `?`, `#`, `%` and spaces are encoded),
 * but keeps `:` raw, as run ids like `sess-0:train:0` are sent unencoded.
 *
 * @example
 * ```ts
 * encodePathSegment("sess-0:train:0"); // "sess-0:train:0"
 * encodePathSegment("a/b c");          // "a%2Fb%20c"
 * ```
 */
export function encodePathSegment(segment: string): string {
  return encodeURIComponent(segment).replace(/%3A/gi, ":");
}

/**
 * The openapi-fetch `pathSerializer` of tinker-ts: fills `{name}` placeholders with {@link encodePathSegment}.
 *
 * @throws {InvalidArgumentError} when a parameter is missing, not a string/number, empty, `.` or `..` (which would change the URL's path).
 * @example
 * ```ts
 * tinkerPathSerializer("/api/v1/training_runs/{training_run_id}", { training_run_id: "s:train:0" });
 * // "/api/v1/training_runs/s:train:0"
 * ```
 */
export function tinkerPathSerializer(pathname: string, pathParams: Record<string, unknown>): string {
  return pathname.replace(/\{([^{}]+)\}/g, (whole: string, name: string) => {
    if (/^[.;]|\*$/.test(name)) return defaultPathSerializer(whole, pathParams);
    const value = pathParams[name];
    if (value === undefined || value === null) {
      throw new InvalidArgumentError(`Missing path parameter "${name}" for ${pathname}.`);
    }
    if (typeof value !== "string" && typeof value !== "number") {
      throw new InvalidArgumentError(`Path parameter "${name}" for ${pathname} must be a string, got ${typeof value}.`);
    }
    const s = String(value);
    if (s === "" || s === "." || s === "..") {
      throw new InvalidArgumentError(
        `Invalid path parameter "${name}" ${JSON.stringify(s)} for ${pathname}: it must not be empty, "." or "..".`,
      );
    }
    return encodePathSegment(s);
  });
}

function validateApiKey(apiKey: unknown): string {
  if (typeof apiKey !== "string" || apiKey === "") {
    throw new ConfigurationError(
      "The API key is missing. Pass apiKey or set TINKER_API_KEY (the local server prints its key when it starts).",
    );
  }
  if (/[\s\p{Cc}]/u.test(apiKey) || /[^\x20-\x7e]/.test(apiKey)) {
    throw new ConfigurationError("The API key contains whitespace, control or non-ASCII characters; check how it was copied.");
  }
  return apiKey;
}

/**
 * Sends typed requests to a Tinker server with THE retry policy, per-attempt timeouts, aborts, status → error
 * mapping and zod validation. Every request carries `X-API-Key`, `Accept: application/json` and a
 * `User-Agent` naming tinker-ts; openapi-fetch adds `Content-Type: application/json` to bodies.
 *
 * @example
 * ```ts
 * import { UntypedAPIFutureSchema } from "./schemas.js";
 *
 * const transport = new Transport({ baseUrl: "http://127.0.0.1:8080", apiKey: "tml-local" });
 * const fut = await transport.call(
 *   "save_weights",
 *   (init) => transport.api.POST("/api/v1/save_weights", { body: { model_id: "run-1", path: "ckpt-1", seq_id: 2 }, ...init }),
 *   UntypedAPIFutureSchema,
 *   { signal },
 * );
 * ```
 */
export class Transport {
  /** The normalised base URL (no trailing slash). */
  readonly baseUrl: string;
  /** How each request's credential is chosen, when not a fixed API key. */
  get auth(): TransportAuth | undefined {
    return this.#auth;
  }

  /** Secrets every error of this transport redacts (the API key, and tokens as they are obtained). */
  get secrets(): readonly string[] {
    return this.#secrets;
  }
  /** The typed openapi-fetch client; call it through {@link Transport.call} / {@link Transport.callRaw}. */
  readonly api: Client<paths>;
  /** @internal Where requests go: the proxy settings resolved from `proxy` and the environment (downloads use them too). */
  readonly proxy: ProxySettings;
  readonly #apiKey: string;
  readonly #secrets: string[];
  readonly #auth: TransportConfig["auth"];
  readonly #retrying: RetryingFetch;
  readonly #timeoutMs: number | undefined;
  readonly #log: Log;
  readonly #observer: RequestObserver | undefined;

  /**
   * Creates a transport. Sends nothing.
   *
   * @throws {ConfigurationError} when the base URL or API key is missing or malformed.
   * @throws {InvalidArgumentError} when `maxRetries`/`timeoutMs` is out of range.
   */
  constructor(config: TransportConfig) {
    this.#auth = config.auth;
    this.#apiKey = config.auth !== undefined && config.apiKey === undefined ? "" : validateApiKey(config.apiKey);
    this.#secrets = config.secrets ?? [];
    if (this.#apiKey !== "" && !this.#secrets.includes(this.#apiKey)) this.#secrets.push(this.#apiKey);
    try {
      this.baseUrl = normalizeBaseUrl(config.baseUrl);
    } catch (err) {
      // The key must not appear even if it was passed as the URL by mistake.
      throw err instanceof ConfigurationError ? new ConfigurationError(redact(err.message, [this.#apiKey])) : err;
    }
    this.#timeoutMs = config.timeoutMs;
    this.#log = config.log ?? new Log({ logger: config.logger, logLevel: config.logLevel, env: process.env });
    this.#observer = RequestObserver.create(this.#log, config, this.#secrets);
    this.proxy = resolveProxySettings(config.proxy, config.proxyEnv ?? process.env);
    for (const secret of this.proxy.secrets) if (!this.#secrets.includes(secret)) this.#secrets.push(secret);
    const baseFetch = config.fetch ?? createNodeHttpFetch(this.proxy);
    this.#retrying = createRetryingFetch({
      ...(config.maxRetries === undefined ? {} : { maxRetries: config.maxRetries }),
      ...(config.retryBudgetMs === undefined ? {} : { retryBudgetMs: config.retryBudgetMs }),
      ...(config.timeoutMs === undefined ? {} : { timeoutMs: config.timeoutMs }),
      ...(config.billingMaxPauseMs === undefined ? {} : { billingMaxPauseMs: config.billingMaxPauseMs }),
      ...(config.onRetry === undefined ? {} : { onRetry: config.onRetry }),
      ...(config.now === undefined ? {} : { now: config.now }),
      fetch: (req: Request) => baseFetch(req),
      ...(config.sleep === undefined ? {} : { sleep: config.sleep }),
      ...(config.random === undefined ? {} : { random: config.random }),
      secrets: this.#secrets,
      observer: this.#observer,
    });
    const headers: Record<string, string> = {
      Accept: "application/json",
      "User-Agent": USER_AGENT,
      ...config.defaultHeaders,
    };
    for (const name of Object.keys(headers)) {
      if (name.toLowerCase() === "x-api-key") delete headers[name];
    }
    if (this.#apiKey !== "") headers["X-API-Key"] = this.#apiKey;
    this.api = createClient<paths>({
      baseUrl: this.baseUrl,
      headers,
      pathSerializer: tinkerPathSerializer,
      fetch: (req: Request) => this.#retrying(req),
    });
  }

  /**
   * Runs one openapi-fetch call with retries, timeout and abort, and returns its JSON body validated by `schema`.
   * Decides on `response.ok`: non-2xx → the {@link APIError} subclass for the status (after retries, for
   * retryable statuses); 2xx → JSON parsed and validated.
   *
   * @param op - Operation name for messages, e.g. `"save_weights"`.
   * @param fn - Performs the call; must spread `init` into the openapi-fetch options.
   * @param schema - zod schema of the 2xx body.
   * @throws {APIError} (a status subclass such as {@link ConflictError}) for a non-2xx response.
   * @throws {ResponseValidationError} when a 2xx body is not JSON or does not match `schema`.
   * @throws {APIConnectionError} / {@link APITimeoutError} when no response arrived after the retries.
   * @throws {APIUserAbortError} when `options.signal` aborts.
   * @example
   * ```ts
   * import { TrainingRunSchema } from "./schemas.js";
   *
   * const run = await transport.call(
   *   "get_training_run",
   *   (init) => transport.api.GET("/api/v1/training_runs/{training_run_id}", { params: { path: { training_run_id: runId } }, ...init }),
   *   TrainingRunSchema,
   * );
   * ```
   */
  async call<T>(op: string, fn: TransportCallback, schema: z.ZodType<T>, options: CallOptions = {}): Promise<T> {
    const { result, method, url } = await this.#invoke(fn, options, "text");
    const { response } = result;
    if (!response.ok) throw this.#statusError(result, method, url);
    const text = typeof result.data === "string" ? result.data : "";
    let json: unknown;
    if (text.trim() !== "") {
      try {
        json = JSON.parse(text) as unknown;
      } catch (err) {
        throw new ResponseValidationError({
          body: text,
          reason: `the ${response.status} body is not JSON (content-type ${response.headers.get("content-type") ?? "none"})`,
          method,
          url,
          operation: op,
          cause: err,
          secrets: this.#secrets,
        });
      }
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      throw new ResponseValidationError({ body: json, zodError: parsed.error, method, url, operation: op, secrets: this.#secrets });
    }
    return parsed.data;
  }

  /**
   * Like {@link Transport.call} but returns the Response itself, for 204s, non-JSON bodies and the archive
   * redirect. A 2xx (or a status in `okStatuses`) is returned; anything else throws the {@link APIError}
   * subclass for the status. A 2xx body is left unread (`parseAs: "stream"`); the body of a non-2xx status
   * accepted through `okStatuses` has already been read (use its headers). The per-attempt timeout still
   * applies while you read the body.
   *
   * @throws {APIError} (a status subclass) for a status that is neither 2xx nor in `okStatuses`.
   * @throws {APIConnectionError} / {@link APITimeoutError} when no response arrived after the retries.
   * @throws {APIUserAbortError} when `options.signal` aborts.
   * @example
   * ```ts
   * const res = await transport.callRaw(
   *   "get_checkpoint_archive_url",
   *   (init) => transport.api.GET("/api/v1/training_runs/{training_run_id}/checkpoints/{checkpoint_kind}/{checkpoint_name}/archive",
   *     { params: { path: { training_run_id: runId, checkpoint_kind: "weights", checkpoint_name: "ckpt-1" } }, ...init }),
   *   { okStatuses: [302], redirect: "manual" },
   * );
   * const location = res.status === 302 ? res.headers.get("location") : undefined;
   * ```
   */
  async callRaw(op: string, fn: TransportCallback, options: RawCallOptions = {}): Promise<Response> {
    void op;
    const { result, method, url } = await this.#invoke(fn, options, "stream");
    const { response } = result;
    if (response.ok || options.okStatuses?.includes(response.status) === true) return response;
    if (options.okAfterLostAnswer?.includes(response.status) === true && retryInfoOf(response)?.outcomeUnknown === true) return response;
    throw this.#statusError(result, method, url);
  }

  /**
   * Runs one openapi-fetch call (with retries, timeout and abort) and reads its answer once, whatever the status:
   * for callers that decide on the status themselves (polling `retrieve_future`, the archive's 503). Never throws
   * an {@link APIError}; build the standard one with {@link Transport.errorFor} when the status is a failure.
   *
   * @throws {APIConnectionError} / {@link APITimeoutError} when no response arrived after the retries.
   * @throws {APIUserAbortError} when `options.signal` aborts.
   * @example
   * ```ts
   * const answer = await transport.answer(
   *   "retrieve_future",
   *   (init) => transport.api.POST("/api/v1/retrieve_future", { body: { request_id: "req-1" }, ...init }),
   *   { maxRetries: 0 },
   * );
   * if (answer.status === 410) throw transport.errorFor(answer);
   * ```
   */
  async answer(op: string, fn: TransportCallback, options: RawCallOptions = {}): Promise<TransportAnswer> {
    void op;
    const { result, method, url } = await this.#invoke(fn, options, "arrayBuffer");
    const { response } = result;
    const retry = retryInfoOf(response);
    const answer: TransportAnswer = {
      status: response.status,
      headers: response.headers,
      body: undefined,
      method,
      url: url ?? response.url,
      attempts: retry?.attempts,
      retry,
    };
    if (!response.ok) {
      answer.body = result.error === "" ? undefined : result.error;
      return answer;
    }
    const bytes = result.data instanceof ArrayBuffer ? new Uint8Array(result.data) : new Uint8Array(0);
    // Like the Python SDK: a 2xx answer is protobuf iff its content-type says so (checked before any JSON parse).
    if ((response.headers.get("content-type") ?? "").includes("application/x-protobuf")) {
      answer.protobuf = bytes;
      return answer;
    }
    const text = new TextDecoder().decode(bytes);
    if (text.trim() === "") return answer;
    try {
      answer.body = JSON.parse(text) as unknown;
    } catch (err) {
      answer.body = text;
      answer.jsonError = err;
    }
    return answer;
  }

  /**
   * The {@link APIError} subclass for a failed `TransportAnswer` (the error {@link Transport.call} would throw).
   *
   * @example
   * ```ts
   * const answer = await transport.answer("get_info", (init) => transport.api.POST("/api/v1/get_info", { body: { model_id: "m" }, ...init }));
   * if (answer.status >= 400) throw transport.errorFor(answer);
   * ```
   */
  errorFor(answer: TransportAnswer): APIError {
    const init = {
      status: answer.status,
      headers: answer.headers,
      body: answer.body,
      ...(answer.method === undefined ? {} : { method: answer.method }),
      ...(answer.url === undefined ? {} : { url: answer.url }),
      ...(answer.attempts === undefined ? {} : { attempts: answer.attempts }),
      secrets: this.#secrets,
    };
    const retry = answer.retry;
    if (retry?.exhausted !== true) return APIError.fromResponse(init);
    // Retries ran out: say whether the request may have been applied and what to do instead of resubmitting.
    const mayHave = retry.outcomeUnknown || answer.status >= 500;
    return APIError.fromResponse({ ...init, elapsedMs: retry.elapsedMs, nextStep: exhaustionNote(mayHave) });
  }

  /**
   * Writes a debug line to the client's log (when its level is `debug`), with the API key and tokens removed.
   *
   * @example
   * ```ts
   * transport.debug("publish_checkpoint: already public; an earlier attempt whose answer was lost made it so");
   * ```
   */
  debug(message: string): void {
    if (this.#log.enabled("debug")) this.#log.debug(redact(message, this.#secrets));
  }

  /** @internal The client's log (level, sink, redaction). */
  get log(): Log {
    return this.#log;
  }

  /** @internal Told of every HTTP attempt, or `undefined` when nothing listens (the download reports its GETs to it). */
  get observer(): RequestObserver | undefined {
    return this.#observer;
  }

  async #invoke(
    fn: TransportCallback,
    options: RawCallOptions,
    parseAs: "text" | "stream" | "arrayBuffer",
  ): Promise<{ result: FetchResult; method: string | undefined; url: string | undefined }> {
    let sent: Request | undefined;
    const retrying = this.#retrying;
    const init: RequestInitExtras = {
      fetch: async (req: Request) => {
        sent = req;
        const send = (r: Request, key: string | undefined): Promise<Response> => {
          const idempotencyKey = options.idempotencyKey ?? key;
          return retrying(r, {
            ...(options.signal === undefined ? {} : { signal: options.signal }),
            ...(options.maxRetries === undefined ? {} : { maxRetries: options.maxRetries }),
            ...(options.retryBudgetMs === undefined ? {} : { retryBudgetMs: options.retryBudgetMs }),
            ...(options.noRetryStatuses === undefined ? {} : { noRetryStatuses: options.noRetryStatuses }),
            ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
            ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
          });
        };
        // With an auth (JWT mode): its credential, and one resend with a renewed token after a 401.
        return this.#auth === undefined ? send(req, undefined) : sendAuthenticated(this.#auth, req, send, (m) => this.debug(m));
      },
      headers: { ...options.headers },
      parseAs,
    };
    if (options.signal !== undefined) init.signal = options.signal;
    if (options.redirect !== undefined) init.redirect = options.redirect;
    if (options.signal?.aborted === true) {
      throw new APIUserAbortError({ subject: "The request", cause: options.signal.reason, secrets: this.#secrets });
    }
    try {
      const result = await fn(init);
      return { result, method: sent?.method, url: sent?.url };
    } catch (err) {
      throw this.#wrapThrown(err, options, sent);
    }
  }

  #wrapThrown(err: unknown, options: CallOptions, sent: Request | undefined): TinkerError {
    if (err instanceof TinkerError) return err;
    const where = { method: sent?.method, url: sent?.url, cause: err, secrets: this.#secrets };
    if (options.signal?.aborted === true) return new APIUserAbortError(where);
    const name = err instanceof Error || err instanceof DOMException ? err.name : "";
    if (name === "TimeoutError" || name === "AbortError") {
      return new APITimeoutError({ ...where, timeoutMs: options.timeoutMs ?? this.#timeoutMs ?? DEFAULT_TIMEOUT_MS });
    }
    return new APIConnectionError(where);
  }

  #statusError(result: FetchResult, method: string | undefined, url: string | undefined): APIError {
    const { response } = result;
    return this.errorFor({
      status: response.status,
      headers: response.headers,
      body: result.error === "" ? undefined : result.error,
      method,
      url: url ?? response.url,
      attempts: retryInfoOf(response)?.attempts,
      retry: retryInfoOf(response),
    });
  }
}
