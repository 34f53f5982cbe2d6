/**
 * The text of error messages: how a request, a server detail, a cause and the next step are described.
 * Shared by the error classes of `core/errors.ts`, `core/tinker-path.ts` and `download/errors.ts`.
 *
 * @module
 */
import { redact } from "./redact.js";

/**
 * Longest server detail quoted in a message.
 *
 * @example
 * ```ts
 * const shown = truncate("x".repeat(900), MAX_DETAIL_CHARS);
 * ```
 */
export const MAX_DETAIL_CHARS = 500;

/**
 * `METHOD /path?query` for messages, from a full URL (the path only, never the host).
 *
 * @example
 * ```ts
 * describeTarget("GET", "http://h:8000/api/v1/x?limit=2", []); // "GET /api/v1/x?limit=2"
 * ```
 */
export function describeTarget(method: string | undefined, url: string | undefined, secrets: readonly (string | undefined)[]): string {
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

/**
 * Cuts `text` to `max` characters and says how many were left out.
 *
 * @example
 * ```ts
 * truncate("abcdef", 3); // "abc… (3 more characters)"
 * ```
 */
export function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length - max} more characters)`;
}

/**
 * Quotes a user-supplied string for a message: JSON escaping shows control characters; long input is cut.
 *
 * @example
 * ```ts
 * quote("a\tb"); // "\"a\\tb\""
 * ```
 */
export function quote(input: string): string {
  return truncate(JSON.stringify(input), 200);
}

/**
 * The most useful human-readable part of an error body: FastAPI `detail`, a `message` or `error` string,
 * else the JSON or text itself (truncated).
 *
 * @example
 * ```ts
 * extractDetail({ detail: "no such run" }); // "no such run"
 * ```
 */
export function extractDetail(body: unknown): string | undefined {
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

/**
 * The sentence that tells the user what to do after an HTTP status.
 *
 * @example
 * ```ts
 * nextStepFor(401); // "Check that the API key (TINKER_API_KEY) is correct and has not expired."
 * ```
 */
export function nextStepFor(status: number): string {
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
      return "Rate limited: wait before trying again, lower the request rate, or give the call a larger retryBudgetMs.";
    default:
      return status >= 500
        ? "The server failed; try again later, and report the request id if it keeps happening."
        : "See the status and body for details.";
  }
}

/**
 * Copies response headers into a `Headers` with every value redacted.
 *
 * @example
 * ```ts
 * toHeaders({ "x-api-key": "tml-secret" }, ["tml-secret"]).get("x-api-key"); // "[REDACTED]"
 * ```
 */
export function toHeaders(headers: Headers | Record<string, string> | undefined, secrets: readonly (string | undefined)[]): Headers {
  const out = new Headers();
  if (headers === undefined) return out;
  const entries = headers instanceof Headers ? [...headers.entries()] : Object.entries(headers);
  for (const [k, v] of entries) out.append(k, redact(v, secrets));
  return out;
}

/**
 * The server's request id: the `x-request-id` header, else a `request_id` body field.
 *
 * @example
 * ```ts
 * requestIdFrom(new Headers({ "x-request-id": "req-1" }), undefined); // "req-1"
 * ```
 */
export function requestIdFrom(headers: Headers, body: unknown): string | undefined {
  const fromHeader = headers.get("x-request-id");
  if (fromHeader !== null && fromHeader !== "") return fromHeader;
  if (body !== null && typeof body === "object" && !Array.isArray(body)) {
    const v = (body as Record<string, unknown>)["request_id"];
    if (typeof v === "string" && v !== "") return v;
  }
  return undefined;
}

/**
 * A cause chain as text (`message (code): inner message`), at most 4 levels deep.
 *
 * @example
 * ```ts
 * describeCause(new Error("fetch failed", { cause: new Error("connect ECONNREFUSED") }));
 * ```
 */
export function describeCause(cause: unknown): string {
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
