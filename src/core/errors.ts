/**
 * The tinker-ts error hierarchy.
 *
 * ```text
 * TinkerError
 * ├── APIError (status, body, headers, requestId, method, url)
 * │   ├── BadRequestError 400, AuthenticationError 401, PermissionDeniedError 403, NotFoundError 404,
 * │   │   ConflictError 409, UnprocessableEntityError 422, RateLimitError 429, InternalServerError ≥500
 * │   └── PromiseExpiredError (410 while retrieving a future)
 * ├── APIConnectionError ── APITimeoutError, ProxyError
 * ├── APIUserAbortError
 * ├── RequestFailedError, ResponseValidationError, InvalidArgumentError, ConfigurationError
 * └── (beside what owns them) InvalidTinkerPathError, InvalidCheckpointNameError (core/tinker-path.ts),
 *     InvalidTtlError (core/ttl.ts): InvalidArgumentErrors; DestinationExistsError, UnsafeArchiveError,
 *     IncompleteCheckpointError, ArchiveExtractionError (download/errors.ts)
 * ```
 *
 * Every message says what failed, where, and what to do next. Secrets (the API key) are removed from
 * every message and field with `redact` (internal/redact.ts); whoever builds an error passes the secrets it knows.
 *
 * @module
 */
import { STATUS_CODES } from "node:http";
import { z } from "zod";
import {
  MAX_DETAIL_CHARS,
  describeCause,
  describeTarget,
  extractDetail,
  nextStepFor,
  requestIdFrom,
  toHeaders,
  truncate,
} from "../internal/error-text.js";
import { redact, redactValue, sanitizeUrl } from "../internal/redact.js";

/**
 * The root of every error tinker-ts throws. Catch this to handle any SDK failure.
 *
 * @example
 * ```ts
 * try {
 *   parseTinkerPath("not-a-path");
 * } catch (err) {
 *   if (err instanceof TinkerError) console.error(err.message);
 * }
 * ```
 */
export class TinkerError extends Error {
  override name: string = "TinkerError";

  /** Creates an error with a complete, already-redacted message. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/**
 * An argument was rejected before anything was sent (bad option value, malformed input, invalid configuration).
 * The message names the argument, the value's problem and what is allowed.
 *
 * @example
 * ```ts
 * throw new InvalidArgumentError("maxRetries must be a whole number ≥ 0, got -1.");
 * ```
 */
export class InvalidArgumentError extends TinkerError {
  override name: string = "InvalidArgumentError";
}

/** What {@link APIError} and its subclasses are built from. */
export interface APIErrorInit {
  /** HTTP status of the response. */
  status: number;
  /** Response headers (values are redacted when stored). */
  headers?: Headers | Record<string, string>;
  /** Parsed JSON body, or text when it is not JSON, or `undefined` when empty (redacted when stored). */
  body?: unknown;
  /** HTTP method of the request, e.g. `"POST"`. */
  method?: string;
  /** Full request URL; stored without user info or secret-looking query values. */
  url?: string;
  /** Replaces the generated message (still redacted). */
  message?: string;
  /** Strings that must never appear in the error (the API key). */
  secrets?: readonly (string | undefined)[];
  /** How many attempts were made, when the request was retried. */
  attempts?: number;
  /** Overrides the request id found in the `x-request-id` header or a `request_id` body field. */
  requestId?: string;
  /** Replaces the status's generic next step at the end of the message (e.g. after retries ran out). */
  nextStep?: string;
  /** How long the attempts took (ms), when the request was retried; shown with `attempts`. */
  elapsedMs?: number;
}

/**
 * The server answered with a non-success HTTP status. Subclasses name the common statuses; other statuses
 * (3xx, 402, 408, 410, ...) are plain `APIError`. Use {@link APIError.fromResponse} to build the right class.
 *
 * @example
 * ```ts
 * try {
 *   await rest.getTrainingRun("run-1");
 * } catch (err) {
 *   if (err instanceof NotFoundError) console.log("no such run", err.requestId);
 *   else if (err instanceof APIError) console.log(err.status, err.body);
 * }
 * ```
 */
export class APIError extends TinkerError {
  override name: string = "APIError";
  /** HTTP status code. */
  readonly status: number;
  /** Parsed JSON body, text, or `undefined` when the body was empty. Secrets are redacted. */
  readonly body: unknown;
  /** Response headers (secret values redacted). */
  readonly headers: Headers;
  /** Server request id from the `x-request-id` header or a `request_id` body field, if any. */
  readonly requestId: string | undefined;
  /** HTTP method of the failed request. */
  readonly method: string | undefined;
  /** URL of the failed request, without user info or secret query values. */
  readonly url: string | undefined;

  /** Builds the error and its message (`POST /api/v1/x failed with 409 Conflict: <detail>. <next step>`). */
  constructor(init: APIErrorInit) {
    const secrets = init.secrets ?? [];
    const body = redactValue(init.body, secrets);
    const headers = toHeaders(init.headers, secrets);
    const requestId = init.requestId ?? requestIdFrom(headers, body);
    super(redact(init.message ?? APIError.describe(init, body, headers, requestId), secrets));
    this.status = init.status;
    this.body = body;
    this.headers = headers;
    this.requestId = requestId;
    this.method = init.method;
    this.url = init.url === undefined ? undefined : sanitizeUrl(init.url, secrets);
  }

  private static describe(init: APIErrorInit, body: unknown, headers: Headers, requestId: string | undefined): string {
    const secrets = init.secrets ?? [];
    const target = describeTarget(init.method, init.url, secrets);
    const statusText = STATUS_CODES[init.status] ?? "";
    const status = `${init.status}${statusText === "" ? "" : ` ${statusText}`}`;
    const over = init.elapsedMs === undefined ? "" : ` over ${Math.round(init.elapsedMs / 1000)} s`;
    const attempts = init.attempts !== undefined && init.attempts > 1 ? ` after ${init.attempts} attempts${over}` : "";
    const rid = requestId === undefined ? "" : ` (request id ${requestId})`;
    if (init.status >= 300 && init.status < 400) {
      const location = headers.get("location");
      let where = "";
      if (location !== null) {
        try {
          const base = init.url ?? "http://invalid.invalid/";
          const u = new URL(location, base);
          where = ` to ${u.origin}${u.pathname}`;
        } catch {
          where = "";
        }
      }
      return `${target} returned a ${status} redirect${where}, which was not followed${rid}. ${nextStepFor(init.status)}`;
    }
    const detail = extractDetail(body);
    const detailText = detail === undefined ? " (empty body)" : `: ${detail}`;
    return `${target} failed with ${status}${attempts}${detailText}${rid}. ${init.nextStep ?? nextStepFor(init.status)}`;
  }

  /**
   * Builds the error class that matches the status: 400 {@link BadRequestError}, 401 {@link AuthenticationError},
   * 403 {@link PermissionDeniedError}, 404 {@link NotFoundError}, 409 {@link ConflictError},
   * 422 {@link UnprocessableEntityError}, 429 {@link RateLimitError}, ≥500 {@link InternalServerError},
   * anything else a plain {@link APIError}.
   *
   * @example
   * ```ts
   * const err = APIError.fromResponse({ status: 409, body: { detail: "exists" }, method: "POST", url });
   * err instanceof ConflictError; // true
   * ```
   */
  static fromResponse(init: APIErrorInit): APIError {
    const s = init.status;
    if (s === 400) return new BadRequestError(init);
    if (s === 401) return new AuthenticationError(init);
    if (s === 403) return new PermissionDeniedError(init);
    if (s === 404) return new NotFoundError(init);
    if (s === 409) return new ConflictError(init);
    if (s === 422) return new UnprocessableEntityError(init);
    if (s === 429) return new RateLimitError(init);
    if (s >= 500) return new InternalServerError(init);
    return new APIError(init);
  }
}

/**
 * HTTP 400: the server rejected the request's arguments.
 *
 * @example
 * ```ts
 * try {
 *   await rest.setCheckpointTtlFromTinkerPath(tinkerPath, 7200);
 * } catch (err) {
 *   if (err instanceof BadRequestError) console.error(err.message, err.body);
 *   else throw err;
 * }
 * ```
 */
export class BadRequestError extends APIError {
  override name: string = "BadRequestError";
}

/**
 * HTTP 401: the API key is missing, wrong or expired.
 *
 * @example
 * ```ts
 * try {
 *   await rest.listUserCheckpoints();
 * } catch (err) {
 *   if (err instanceof AuthenticationError) console.error("check TINKER_API_KEY:", err.message);
 *   else throw err;
 * }
 * ```
 */
export class AuthenticationError extends APIError {
  override name: string = "AuthenticationError";
}

/**
 * HTTP 403: the API key may not access this resource.
 *
 * @example
 * ```ts
 * try {
 *   await rest.deleteCheckpointFromTinkerPath(tinkerPath);
 * } catch (err) {
 *   if (err instanceof PermissionDeniedError) console.error("not your checkpoint:", err.message);
 *   else throw err;
 * }
 * ```
 */
export class PermissionDeniedError extends APIError {
  override name: string = "PermissionDeniedError";
}

/**
 * HTTP 404: the run, checkpoint, session or route does not exist (or is not visible to this key).
 *
 * @example
 * ```ts
 * try {
 *   await rest.getTrainingRun(runId);
 * } catch (err) {
 *   if (err instanceof NotFoundError) console.error("expired or deleted?", err.message);
 *   else throw err;
 * }
 * ```
 */
export class NotFoundError extends APIError {
  override name: string = "NotFoundError";
}

/**
 * HTTP 409: the request conflicts with server state (e.g. the checkpoint name is taken). Never retried.
 *
 * @example
 * ```ts
 * try {
 *   await training.saveState("final");
 * } catch (err) {
 *   if (err instanceof ConflictError) await training.saveState("final", { overwrite: true });
 *   else throw err;
 * }
 * ```
 */
export class ConflictError extends APIError {
  override name: string = "ConflictError";
}

/**
 * HTTP 422: the request was well-formed but its values could not be processed.
 *
 * @example
 * ```ts
 * try {
 *   await training.optimStep({ learning_rate: 1e-4 });
 * } catch (err) {
 *   if (err instanceof UnprocessableEntityError) console.error(err.message, err.body);
 *   else throw err;
 * }
 * ```
 */
export class UnprocessableEntityError extends APIError {
  override name: string = "UnprocessableEntityError";
}

/**
 * HTTP 429: rate limited; thrown after the retries are used up.
 *
 * @example
 * ```ts
 * try {
 *   await rest.listTrainingRuns();
 * } catch (err) {
 *   if (err instanceof RateLimitError) console.error("slow down; retry later", err.headers.get("retry-after"));
 *   else throw err;
 * }
 * ```
 */
export class RateLimitError extends APIError {
  override name: string = "RateLimitError";
}

/**
 * HTTP ≥500: the server failed; thrown after the retries are used up.
 *
 * @example
 * ```ts
 * try {
 *   await rest.listTrainingRuns();
 * } catch (err) {
 *   if (err instanceof InternalServerError) console.error("server error, request id", err.requestId);
 *   else throw err;
 * }
 * ```
 */
export class InternalServerError extends APIError {
  override name: string = "InternalServerError";
}

/**
 * HTTP 410 while retrieving a future: the server no longer holds the result of that request.
 * The work may or may not have happened; resubmit the request if doing it twice is harmless, otherwise check
 * the state first (a second `optimStep` would step twice).
 *
 * @example
 * ```ts
 * let saved: { path: string };
 * try {
 *   saved = await training.saveState("epoch-3");
 * } catch (err) {
 *   if (!(err instanceof PromiseExpiredError)) throw err;
 *   // The answer expired before it was read and the save may have happened: saving again is harmless with overwrite.
 *   saved = await training.saveState("epoch-3", { overwrite: true });
 * }
 * console.log(saved.path);
 * ```
 */
export class PromiseExpiredError extends APIError {
  override name: string = "PromiseExpiredError";

  /** Builds the error for the future whose `requestId` expired. */
  constructor(init: Omit<APIErrorInit, "status"> & { status?: number; requestId?: string }) {
    const rid = init.requestId ?? "(unknown request id)";
    super({
      ...init,
      status: init.status ?? 410,
      message:
        init.message ??
        `${describeTarget(init.method, init.url, init.secrets ?? [])} for request ${rid} failed with 410 Gone: promise expired; resubmit the request.`,
    });
  }
}

/** What {@link APIConnectionError} is built from. */
export interface ConnectionErrorInit {
  /** HTTP method of the request. */
  method?: string;
  /** Full request URL (stored sanitised). */
  url?: string;
  /** Replaces `METHOD /path` in the message, e.g. `"waiting for request req-1"`. */
  subject?: string;
  /** The underlying error. */
  cause?: unknown;
  /** Replaces the generated message (still redacted). */
  message?: string;
  /** Strings that must never appear in the error. */
  secrets?: readonly (string | undefined)[];
  /** How many attempts were made. */
  attempts?: number;
}

/**
 * The request never got an HTTP response: connection refused or reset, DNS failure, TLS failure, ...
 * Thrown after the retries are used up; `cause` holds the underlying error.
 *
 * @example
 * ```ts
 * try {
 *   await rest.listTrainingRuns();
 * } catch (err) {
 *   if (err instanceof APIConnectionError) console.error("server unreachable:", err.message);
 *   else throw err;
 * }
 * ```
 */
export class APIConnectionError extends TinkerError {
  override name: string = "APIConnectionError";
  /** HTTP method of the request, if known. */
  readonly method: string | undefined;
  /** Request URL (sanitised), if known. */
  readonly url: string | undefined;
  /** How many attempts were made, if known. */
  readonly attempts: number | undefined;

  /** Builds the error; the message names the request, the cause and a next step. */
  constructor(init: ConnectionErrorInit = {}) {
    const secrets = init.secrets ?? [];
    const subject = init.subject ?? describeTarget(init.method, init.url, secrets);
    const attempts = init.attempts !== undefined && init.attempts > 1 ? ` after ${init.attempts} attempts` : "";
    const proxy = proxyOf(init.cause);
    const next =
      proxy === undefined
        ? "Check the base URL and that the server is running and reachable."
        : `Check that the proxy ${proxy} is running and reachable (HTTPS_PROXY / HTTP_PROXY, or the proxy option), or list the host in NO_PROXY to connect directly.`;
    const message = init.message ?? `${subject} could not reach the server${attempts}: ${describeCause(init.cause)}. ${next}`;
    super(redact(message, secrets), init.cause === undefined ? undefined : { cause: init.cause });
    this.method = init.method;
    this.url = init.url === undefined ? undefined : sanitizeUrl(init.url, secrets);
    this.attempts = init.attempts;
  }
}

/** The proxy (`host:port`) a connection failure names, if it was the proxy that could not be reached. */
function proxyOf(cause: unknown): string | undefined {
  for (let cur = cause, depth = 0; cur instanceof Error && depth < 4; cur = cur.cause, depth++) {
    const proxy = (cur as { proxy?: unknown }).proxy;
    if (typeof proxy === "string") return proxy;
  }
  return undefined;
}

/**
 * No response arrived within the time limit. The server may still complete the work: check its state
 * (or poll the future again) before resubmitting.
 *
 * @example
 * ```ts
 * try {
 *   await future.result({ timeoutMs: 60_000 });
 * } catch (err) {
 *   if (err instanceof APITimeoutError) console.error("still running on the server; await it again later");
 *   else throw err;
 * }
 * ```
 */
export class APITimeoutError extends APIConnectionError {
  override name: string = "APITimeoutError";
  /** The time limit that was exceeded, in milliseconds. */
  readonly timeoutMs: number | undefined;

  /** Builds the error; the message names the request and the limit in ms. */
  constructor(init: ConnectionErrorInit & { timeoutMs?: number } = {}) {
    const secrets = init.secrets ?? [];
    const subject = init.subject ?? describeTarget(init.method, init.url, secrets);
    const limit = init.timeoutMs === undefined ? "" : ` after ${init.timeoutMs} ms`;
    const attempts = init.attempts !== undefined && init.attempts > 1 ? ` (${init.attempts} attempts)` : "";
    super({
      ...init,
      message:
        init.message ??
        `${subject} timed out${limit}${attempts}. The server may still complete the work; check its state before resubmitting, or raise timeoutMs.`,
    });
    this.timeoutMs = init.timeoutMs;
  }
}

/**
 * The HTTP proxy refused to open a tunnel (its answer to `CONNECT`): `407` (credentials missing or rejected),
 * `403` (destination not allowed), `5xx` (the proxy could not reach the host), ... The message names the proxy
 * (`host:port`, never its credentials), the destination and what to do. A `407` or `403` is thrown at once; a
 * `5xx` is retried like a connection error first. Failing to connect to the proxy at all is a plain
 * {@link APIConnectionError}.
 *
 * @example
 * ```ts
 * try {
 *   await rest.listTrainingRuns();
 * } catch (err) {
 *   if (err instanceof ProxyError && err.status === 407) console.error(`check the credentials of ${err.proxy}`);
 *   else throw err;
 * }
 * ```
 */
export class ProxyError extends APIConnectionError {
  override name: string = "ProxyError";
  /** The proxy, as `host:port` (no credentials). */
  readonly proxy: string;
  /** The destination the tunnel was for, as `host:port`. */
  readonly target: string;
  /** The proxy's status code for the `CONNECT` request. */
  readonly status: number;

  /** Builds the error; the message says what the status means and what to do. */
  constructor(init: { proxy: string; target: string; status: number; statusText?: string; hadCredentials?: boolean }) {
    const statusText = init.statusText?.trim() || STATUS_CODES[init.status] || "";
    const answer = `${init.status}${statusText === "" ? "" : ` ${statusText}`}`;
    super({ message: `The proxy ${init.proxy} refused to open a tunnel to ${init.target}: ${answer}. ${proxyNextStep(init)}` });
    this.proxy = init.proxy;
    this.target = init.target;
    this.status = init.status;
  }
}

function proxyNextStep(init: { proxy: string; target: string; status: number; hadCredentials?: boolean }): string {
  const host = init.target.replace(/:\d+$/, "");
  if (init.status === 407) {
    return init.hadCredentials === true
      ? "It rejected the credentials in the proxy URL: check the user name and password (percent-encode special characters) in HTTPS_PROXY / HTTP_PROXY or the `proxy` option."
      : `It requires credentials: put them in the proxy URL, e.g. http://USER:PASSWORD@${init.proxy} (percent-encode special characters), in HTTPS_PROXY / HTTP_PROXY or the \`proxy\` option.`;
  }
  if (init.status === 403) {
    return `It does not allow this destination (many proxies allow CONNECT only to port 443): ask its administrators to allow ${init.target}, or add ${host} to NO_PROXY to connect directly.`;
  }
  if (init.status >= 500) {
    return `The proxy could not reach ${init.target}: check that the host is up and reachable from the proxy, then try again.`;
  }
  return `Check the proxy settings (HTTPS_PROXY / HTTP_PROXY / NO_PROXY or the \`proxy\` option), or add ${host} to NO_PROXY to connect directly.`;
}

/**
 * The caller aborted the request with its `AbortSignal`. Work already submitted may still complete on the server.
 *
 * @example
 * ```ts
 * try {
 *   await future.result({ signal: AbortSignal.timeout(5_000) });
 * } catch (err) {
 *   if (err instanceof APIUserAbortError) console.error("stopped waiting:", err.message);
 *   else throw err;
 * }
 * ```
 */
export class APIUserAbortError extends TinkerError {
  override name: string = "APIUserAbortError";
  /** HTTP method of the request, if known. */
  readonly method: string | undefined;
  /** Request URL (sanitised), if known. */
  readonly url: string | undefined;

  /** Builds the error; `cause` is the signal's reason, if any. */
  constructor(init: ConnectionErrorInit = {}) {
    const secrets = init.secrets ?? [];
    const subject = init.subject ?? describeTarget(init.method, init.url, secrets);
    const message = init.message ?? `${subject} was aborted by the caller. Work already submitted may still complete on the server.`;
    super(redact(message, secrets), init.cause === undefined ? undefined : { cause: init.cause });
    this.method = init.method;
    this.url = init.url === undefined ? undefined : sanitizeUrl(init.url, secrets);
  }
}

/** Who a failed future blames, as reported by the server. */
export type RequestFailureCategory = "user" | "server" | "unknown";

/**
 * The server accepted a request but reported that it failed (a `retrieve_future` reply with an `error`).
 * `category` says whether the request itself was at fault (`user`) or the server (`server`).
 *
 * @example
 * ```ts
 * try {
 *   await training.forwardBackward(batch, "cross_entropy");
 * } catch (err) {
 *   if (err instanceof RequestFailedError) if (err.category === "user") console.error("fix the batch:", err.detail);
 *   else throw err;
 * }
 * ```
 */
export class RequestFailedError extends TinkerError {
  override name: string = "RequestFailedError";
  /** The future's request id. */
  readonly requestId: string;
  /** `"user"`: fix the request; `"server"`: resubmit later; `"unknown"`: the server did not say. */
  readonly category: RequestFailureCategory;
  /** The server's error text (redacted). */
  readonly detail: string;

  /** Builds the error; an unrecognised `category` becomes `"unknown"`. */
  constructor(init: {
    requestId: string;
    category: string | undefined;
    error: string;
    operation?: string;
    secrets?: readonly (string | undefined)[];
  }) {
    const category: RequestFailureCategory = init.category === "user" || init.category === "server" ? init.category : "unknown";
    const next =
      category === "user"
        ? "Fix the request and submit it again."
        : category === "server"
          ? "The server failed; submit the request again later."
          : "Check the error and submit the request again.";
    const op = init.operation === undefined ? "Request" : `${init.operation} request`;
    const detail = redact(init.error, init.secrets ?? []);
    super(redact(`${op} ${init.requestId} failed (${category} error): ${truncate(detail, MAX_DETAIL_CHARS)}. ${next}`, init.secrets ?? []));
    this.requestId = init.requestId;
    this.category = category;
    this.detail = detail;
  }
}

/**
 * A successful response did not match the expected schema (or was not JSON). Usually the server and this SDK
 * disagree on the API version. `issues` lists the zod issues; `body` is the raw (redacted) body.
 *
 * @example
 * ```ts
 * try {
 *   await rest.listTrainingRuns();
 * } catch (err) {
 *   if (err instanceof ResponseValidationError) console.error(err.message, err.issues, err.body);
 *   else throw err;
 * }
 * ```
 */
export class ResponseValidationError extends TinkerError {
  override name: string = "ResponseValidationError";
  /** The zod issues (empty when the body was not JSON at all). */
  readonly issues: z.core.$ZodIssue[];
  /** The raw response body: parsed JSON, or text when it was not JSON. Secrets are redacted. */
  readonly body: unknown;
  /** HTTP method of the request, if known. */
  readonly method: string | undefined;
  /** Request URL (sanitised), if known. */
  readonly url: string | undefined;

  /** Builds the error from a zod failure (`zodError`) or another `reason` (e.g. "the body is not JSON"). */
  constructor(init: {
    body: unknown;
    zodError?: z.ZodError;
    reason?: string;
    method?: string;
    url?: string;
    operation?: string;
    cause?: unknown;
    secrets?: readonly (string | undefined)[];
  }) {
    const secrets = init.secrets ?? [];
    const target = describeTarget(init.method, init.url, secrets);
    const op = init.operation === undefined ? "" : `${init.operation}: `;
    const what = init.zodError !== undefined ? `\n${z.prettifyError(init.zodError)}\n` : ` (${init.reason ?? "invalid response"}). `;
    const message = `${op}${target} returned a response that does not match the expected schema${init.zodError !== undefined ? ":" : ""}${what}This usually means the server and tinker-ts disagree on the API version; check the base URL or upgrade tinker-ts.`;
    const cause = init.cause ?? init.zodError;
    super(redact(message, secrets), cause === undefined ? undefined : { cause });
    this.issues = init.zodError?.issues ?? [];
    this.body = redactValue(init.body, secrets);
    this.method = init.method;
    this.url = init.url === undefined ? undefined : sanitizeUrl(init.url, secrets);
  }
}

/**
 * The client is not configured: no server URL or API key (from options or `TINKER_BASE_URL` /
 * `TINKER_API_KEY`), or a malformed key. The message says what to set; it never contains the key.
 *
 * @example
 * ```ts
 * try {
 *   new ServiceClient();
 * } catch (err) {
 *   if (err instanceof ConfigurationError) console.error(err.message) // says what to export;
 *   else throw err;
 * }
 * ```
 */
export class ConfigurationError extends TinkerError {
  override name: string = "ConfigurationError";
}
