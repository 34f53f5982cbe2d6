/**
 * The tinker-ts error hierarchy.
 *
 * ```text
 * TinkerError
 * ├── APIError (status, body, headers, requestId, method, url)
 * │   ├── BadRequestError 400, AuthenticationError 401, PermissionDeniedError 403, NotFoundError 404,
 * │   │   ConflictError 409, UnprocessableEntityError 422, RateLimitError 429, InternalServerError ≥500
 * │   └── PromiseExpiredError (410 while retrieving a future)
 * ├── APIConnectionError ── APITimeoutError
 * ├── APIUserAbortError
 * ├── RequestFailedError, ResponseValidationError, InvalidArgumentError, ConfigurationError
 * └── InvalidTinkerPathError, InvalidCheckpointNameError, DestinationExistsError, UnsafeArchiveError
 * ```
 *
 * Every message says what failed, where, and what to do next. Secrets (the API key) are removed from
 * every message and field with {@link redact}; whoever builds an error passes the secrets it knows.
 *
 * @module
 */
import { STATUS_CODES } from "node:http";
import { z } from "zod";
import { CHECKPOINT_NAME_RULE } from "../../generated/constants.js";

/** The text that replaces a secret in messages, bodies and headers. */
export const REDACTED = "[REDACTED]";

/** Secrets shorter than this are not redacted: replacing one or two characters everywhere would garble text. */
const MIN_SECRET_LENGTH = 4;

/** Longest server detail quoted in a message. */
const MAX_DETAIL_CHARS = 500;

/**
 * Replaces every occurrence of each secret (and its percent-encoded form) in `text` with `[REDACTED]`.
 *
 * Secrets that are `undefined`, empty or shorter than 4 characters are ignored.
 *
 * @example
 * ```ts
 * redact("bad key tml-abc123", ["tml-abc123"]); // "bad key [REDACTED]"
 * ```
 */
export function redact(text: string, secrets: readonly (string | undefined)[] = []): string {
  let out = text;
  for (const secret of secrets) {
    if (secret === undefined || secret.length < MIN_SECRET_LENGTH) continue;
    out = out.split(secret).join(REDACTED);
    const encoded = encodeURIComponent(secret);
    if (encoded !== secret) out = out.split(encoded).join(REDACTED);
  }
  return out;
}

/**
 * Returns a deep copy of a JSON-like value with every string (values and object keys) passed through
 * {@link redact}. Non-JSON values (numbers, booleans, null, undefined) are returned unchanged.
 *
 * @example
 * ```ts
 * redactValue({ detail: "key tml-abc123 is invalid" }, ["tml-abc123"]); // { detail: "key [REDACTED] is invalid" }
 * ```
 */
export function redactValue(value: unknown, secrets: readonly (string | undefined)[] = []): unknown {
  if (!secrets.some((s) => s !== undefined && s.length >= MIN_SECRET_LENGTH)) return value;
  if (typeof value === "string") return redact(value, secrets);
  if (Array.isArray(value)) return value.map((v) => redactValue(v, secrets));
  if (value !== null && typeof value === "object" && isPlainObject(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[redact(k, secrets)] = redactValue(v, secrets);
    return out;
  }
  return value;
}

function isPlainObject(value: object): boolean {
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Query parameter names whose values are replaced by `[REDACTED]` in URLs kept on errors. */
const SENSITIVE_QUERY_PARAM = /key|token|secret|signature|sig$|password|credential|auth/i;

/**
 * Makes a URL safe to store on an error: drops user info, redacts sensitive-looking query parameters
 * (`api_key`, `token`, `X-Amz-Signature`, ...) and every given secret. Unparseable input is only redacted.
 *
 * @example
 * ```ts
 * sanitizeUrl("https://u:p@host/x?token=abc&limit=2"); // "https://host/x?token=%5BREDACTED%5D&limit=2"
 * ```
 */
export function sanitizeUrl(url: string, secrets: readonly (string | undefined)[] = []): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return redact(url, secrets);
  }
  parsed.username = "";
  parsed.password = "";
  for (const name of [...new Set(parsed.searchParams.keys())]) {
    if (SENSITIVE_QUERY_PARAM.test(name)) parsed.searchParams.set(name, REDACTED);
  }
  return redact(parsed.toString(), secrets);
}

/** `METHOD /path?query` for messages, from a full URL (the path only, never the host). */
function describeTarget(method: string | undefined, url: string | undefined, secrets: readonly (string | undefined)[]): string {
  const m = method ?? "request";
  if (url === undefined) return m;
  try {
    const u = new URL(url);
    return `${m} ${redact(decodeURIComponentSafe(u.pathname) + u.search, secrets)}`;
  } catch {
    return `${m} ${redact(url, secrets)}`;
  }
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURI(s);
  } catch {
    return s;
  }
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length - max} more characters)`;
}

/** Quotes a user-supplied string for a message: JSON escaping shows control characters; long input is cut. */
function quote(input: string): string {
  return truncate(JSON.stringify(input), 200);
}

/**
 * The most useful human-readable part of an error body: FastAPI `detail`, a `message` or `error` string,
 * else the JSON or text itself (truncated).
 */
function extractDetail(body: unknown): string | undefined {
  if (body === undefined || body === null || body === "") return undefined;
  if (typeof body === "string") return truncate(body.trim(), MAX_DETAIL_CHARS);
  if (typeof body === "object" && !Array.isArray(body)) {
    const rec = body as Record<string, unknown>;
    for (const key of ["detail", "message", "error"]) {
      const v = rec[key];
      if (typeof v === "string" && v !== "") return truncate(v, MAX_DETAIL_CHARS);
      if (v !== null && typeof v === "object") {
        const nested = (v as Record<string, unknown>)["message"];
        if (typeof nested === "string" && nested !== "") return truncate(nested, MAX_DETAIL_CHARS);
        return truncate(JSON.stringify(v), MAX_DETAIL_CHARS);
      }
    }
  }
  try {
    return truncate(JSON.stringify(body), MAX_DETAIL_CHARS);
  } catch {
    return undefined;
  }
}

function nextStepFor(status: number): string {
  if (status >= 300 && status < 400) {
    return "It was not followed (over 10 redirects, or no usable Location header); check the base URL.";
  }
  switch (status) {
    case 400:
      return "Check the request arguments.";
    case 401:
      return "Check that the API key (TINKER_API_KEY) is correct and has not expired.";
    case 402:
      return "Check the account's billing status.";
    case 403:
      return "The API key may not access this resource; check who owns it and the access scope.";
    case 404:
      return "Check that the id or tinker path exists and is visible to this API key.";
    case 408:
      return "The server gave up waiting; try again.";
    case 409:
      return "The request conflicts with the server's current state (for example a checkpoint with that name already exists: choose another name or pass overwrite: true). It was not retried.";
    case 410:
      return "The resource no longer exists; recreate or resubmit it.";
    case 422:
      return "The server could not process the request; check field types and values.";
    case 429:
      return "Rate limited: wait before trying again, lower the request rate, or raise maxRetries.";
    default:
      return status >= 500
        ? "The server failed; try again later, and report the request id if it keeps happening."
        : "See the status and body for details.";
  }
}

function toHeaders(headers: Headers | Record<string, string> | undefined, secrets: readonly (string | undefined)[]): Headers {
  const out = new Headers();
  if (headers === undefined) return out;
  const entries = headers instanceof Headers ? [...headers.entries()] : Object.entries(headers);
  for (const [k, v] of entries) out.append(k, redact(v, secrets));
  return out;
}

function requestIdFrom(headers: Headers, body: unknown): string | undefined {
  const fromHeader = headers.get("x-request-id");
  if (fromHeader !== null && fromHeader !== "") return fromHeader;
  if (body !== null && typeof body === "object" && !Array.isArray(body)) {
    const v = (body as Record<string, unknown>)["request_id"];
    if (typeof v === "string" && v !== "") return v;
  }
  return undefined;
}

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
    const attempts = init.attempts !== undefined && init.attempts > 1 ? ` after ${init.attempts} attempts` : "";
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
    return `${target} failed with ${status}${attempts}${detailText}${rid}. ${nextStepFor(init.status)}`;
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

function describeCause(cause: unknown): string {
  const parts: string[] = [];
  let cur: unknown = cause;
  for (let depth = 0; depth < 4 && cur !== undefined && cur !== null; depth++) {
    if (cur instanceof Error) {
      const code = (cur as { code?: unknown }).code;
      parts.push(typeof code === "string" && !cur.message.includes(code) ? `${cur.message} (${code})` : cur.message);
      cur = cur.cause;
    } else {
      parts.push(String(cur));
      break;
    }
  }
  return parts.filter((p) => p !== "").join(": ") || "unknown error";
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
    const message =
      init.message ??
      `${subject} could not reach the server${attempts}: ${describeCause(init.cause)}. Check the base URL and that the server is running and reachable.`;
    super(redact(message, secrets), init.cause === undefined ? undefined : { cause: init.cause });
    this.method = init.method;
    this.url = init.url === undefined ? undefined : sanitizeUrl(init.url, secrets);
    this.attempts = init.attempts;
  }
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
    const message =
      init.message ?? `${subject} was aborted by the caller. Work already submitted may still complete on the server.`;
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
    const category: RequestFailureCategory =
      init.category === "user" || init.category === "server" ? init.category : "unknown";
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

/** The expected form of a tinker path, quoted in messages. */
export const TINKER_PATH_FORM = "tinker://<training_run_id>/<weights|sampler_weights>/<name>";

/**
 * A string is not a valid `tinker://<training_run_id>/<weights|sampler_weights>/<name>` path.
 *
 * @example
 * ```ts
 * try {
 *   parseTinkerPath("weights/ckpt-1");
 * } catch (err) {
 *   if (err instanceof InvalidTinkerPathError) console.error(err.input, err.reason);
 *   else throw err;
 * }
 * ```
 */
export class InvalidTinkerPathError extends TinkerError {
  override name: string = "InvalidTinkerPathError";
  /** The offending input, unchanged. */
  readonly input: string;
  /** Why it was rejected. */
  readonly reason: string;

  /** Builds the error; the message shows the input (escaped) and the expected form. */
  constructor(input: string, reason: string) {
    super(
      `Invalid tinker path ${quote(input)}: ${reason}. Expected ${TINKER_PATH_FORM}, e.g. tinker://run-123/weights/ckpt-0001.`,
    );
    this.input = input;
    this.reason = reason;
  }
}

/**
 * A checkpoint name is not allowed (empty, too long, contains `/`, `\`, control characters, ...).
 *
 * @example
 * ```ts
 * try {
 *   training.saveState("a/b");
 * } catch (err) {
 *   if (err instanceof InvalidCheckpointNameError) console.error(err.checkpointName, err.reason);
 *   else throw err;
 * }
 * ```
 */
export class InvalidCheckpointNameError extends TinkerError {
  override name: string = "InvalidCheckpointNameError";
  /** The offending name, unchanged. */
  readonly checkpointName: string;
  /** Why it was rejected. */
  readonly reason: string;

  /** Builds the error; the message says what names are allowed. */
  constructor(checkpointName: string, reason: string) {
    super(
      `Invalid checkpoint name ${quote(checkpointName)}: ${reason}. A name is ${CHECKPOINT_NAME_RULE} (e.g. "ckpt-0001").`,
    );
    this.checkpointName = checkpointName;
    this.reason = reason;
  }
}

/**
 * A download destination already exists and `force` was not given.
 *
 * @example
 * ```ts
 * try {
 *   await downloadCheckpoint(rest, tinkerPath, { outputDir: "ckpts" });
 * } catch (err) {
 *   if (err instanceof DestinationExistsError) await downloadCheckpoint(rest, tinkerPath, { outputDir: "ckpts", force: true });
 *   else throw err;
 * }
 * ```
 */
export class DestinationExistsError extends TinkerError {
  override name: string = "DestinationExistsError";
  /** The existing destination path. */
  readonly destination: string;

  /** Builds the error; the message suggests `force` or another output directory. */
  constructor(destination: string) {
    super(
      `Destination ${quote(destination)} already exists. Pass force: true (CLI: --force) to replace it, or choose another output directory.`,
    );
    this.destination = destination;
  }
}

/**
 * An archive entry would land outside the destination (absolute path, `..`, escaping link, ...).
 *
 * @example
 * ```ts
 * try {
 *   await downloadCheckpoint(rest, tinkerPath);
 * } catch (err) {
 *   if (err instanceof UnsafeArchiveError) console.error("refused entry", err.entry, err.reason);
 *   else throw err;
 * }
 * ```
 */
export class UnsafeArchiveError extends TinkerError {
  override name: string = "UnsafeArchiveError";
  /** The offending entry name, unchanged. */
  readonly entry: string;
  /** Why it is unsafe. */
  readonly reason: string;

  /** Builds the error; the message says nothing was installed. */
  constructor(entry: string, reason: string) {
    super(
      `Refusing to extract archive entry ${quote(entry)}: ${reason}. The archive may be corrupt or malicious; nothing was installed.`,
    );
    this.entry = entry;
    this.reason = reason;
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
