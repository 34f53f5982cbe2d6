/**
 * THE retry policy of tinker-ts: a `fetch` wrapper that retries transient failures, enforces a per-attempt
 * timeout, honours aborts, and keeps one idempotency key per logical request.
 *
 * Retried: connection errors, per-attempt timeouts, 408, 429 and ≥500 (and any ≥400 except 409 that says
 * `x-should-retry: true`). Never retried: 2xx, 3xx, 409 and other 4xx, or anything that says
 * `x-should-retry: false`. The request body bytes are identical on every attempt, so a training request
 * keeps its `seq_id`.
 *
 * @module
 */
import { randomUUID } from "node:crypto";
import { APIConnectionError, APITimeoutError, APIUserAbortError, InvalidArgumentError } from "../core/errors.js";
import { type BackoffPolicy, backoffMs, retryAfterMs } from "./backoff.js";
import { nodeHttpFetch } from "./net/node-fetch.js";
import { CREDENTIAL_HEADERS, followRedirects } from "./net/redirect.js";
import { abortableSleep, type SleepFn } from "./sleep.js";

/** Retries after the first attempt unless configured otherwise. */
export const DEFAULT_MAX_RETRIES = 2;
/** Per-attempt time limit unless configured otherwise (ms). */
export const DEFAULT_TIMEOUT_MS = 60_000;
/** Backoff of HTTP retries: from 500 ms, doubling, capped at 8 s, minus up to 25 % jitter. */
export const RETRY_BACKOFF: BackoffPolicy = { initialMs: 500, maxMs: 8_000, jitter: 0.25 };
/** Header carrying the attempt number (0 for the first attempt). */
export const RETRY_COUNT_HEADER = "X-Tinker-Retry-Count";
/** Header carrying the idempotency key on non-GET requests, identical across attempts. */
export const IDEMPOTENCY_KEY_HEADER = "X-Idempotency-Key";
/** Redirects followed at most this many times per attempt. */
const MAX_REDIRECTS = 10;

/** The plain fetch the retry wrapper sends each attempt through. */
export type BaseFetch = (input: Request) => Promise<Response>;

/** Client-wide settings of {@link createRetryingFetch}. */
export interface RetryConfig {
  /** Retries after the first attempt (default 2). */
  maxRetries?: number;
  /** Per-attempt time limit in ms, covering the response headers and body (default 60 000; `Infinity` for none). */
  timeoutMs?: number;
  /** The fetch each attempt goes through (default {@link nodeHttpFetch}, node:http with keep-alive). */
  fetch?: BaseFetch;
  /** Sleep between attempts (default {@link abortableSleep}); inject to record delays in tests. */
  sleep?: SleepFn;
  /** Random source in [0, 1) for jitter (default `Math.random`). */
  random?: () => number;
  /** Strings that must never appear in error messages (the API key). */
  secrets?: readonly (string | undefined)[];
}

/** Per-request overrides of {@link RetryConfig}. */
export interface RetryRequestOptions {
  /** Aborts the request, including a backoff sleep (→ `APIUserAbortError`). Combined with `req.signal`. */
  signal?: AbortSignal;
  /** Retries after the first attempt for this request. */
  maxRetries?: number;
  /** Per-attempt time limit in ms for this request. */
  timeoutMs?: number;
  /** Idempotency key to send (non-GET only); otherwise a request's own `X-Idempotency-Key` or a new UUID. */
  idempotencyKey?: string;
}

/** A fetch that retries; usable as openapi-fetch's `fetch` option. */
export type RetryingFetch = (req: Request, options?: RetryRequestOptions) => Promise<Response>;

const attemptsByResponse = new WeakMap<Response, number>();

/**
 * How many attempts produced `response`, when it came from a {@link RetryingFetch}; otherwise `undefined`.
 *
 * @example
 * ```ts
 * const retryingFetch = createRetryingFetch();
 * const res = await retryingFetch(new Request("http://127.0.0.1:8000/api/v1/healthz"));
 * attemptsOf(res); // 1 when the first attempt succeeded
 * ```
 */
export function attemptsOf(response: Response): number | undefined {
  return attemptsByResponse.get(response);
}

/**
 * Whether a response should be retried: 408, 429, ≥500, or `x-should-retry: true` on any ≥400 except 409;
 * never 2xx, 3xx, 409, or `x-should-retry: false`.
 *
 * @example
 * ```ts
 * shouldRetryResponse(503, new Headers()); // true
 * shouldRetryResponse(409, new Headers({ "x-should-retry": "true" })); // false
 * ```
 */
export function shouldRetryResponse(status: number, headers: Headers): boolean {
  if (status < 400 || status === 409) return false;
  const hint = headers.get("x-should-retry")?.trim().toLowerCase();
  if (hint === "true") return true;
  if (hint === "false") return false;
  return status === 408 || status === 429 || status >= 500;
}

/**
 * The delay before retry number `retryIndex` (0 for the first retry): the server's `retry-after-ms` or
 * `Retry-After` (seconds or HTTP date) when it is between 0 and 60 s ({@link retryAfterMs}); otherwise
 * {@link backoffMs} with {@link RETRY_BACKOFF}: `min(500 · 2^retryIndex, 8000) · (1 − 0.25 · random())`.
 *
 * @example
 * ```ts
 * retryDelayMs(0, new Headers({ "retry-after": "2" }), Math.random); // 2000
 * retryDelayMs(3, undefined, () => 0);                              // 4000
 * ```
 */
export function retryDelayMs(retryIndex: number, headers: Headers | undefined, random: () => number = Math.random): number {
  const fromServer = headers === undefined ? undefined : retryAfterMs(headers);
  return fromServer ?? backoffMs(retryIndex, RETRY_BACKOFF, random);
}

/**
 * Creates THE retrying fetch. Each call is one logical request: its body is buffered once and re-sent
 * byte-for-byte on every attempt, with `X-Tinker-Retry-Count: <n>` and (non-GET/HEAD) one
 * `X-Idempotency-Key` reused across attempts.
 *
 * Redirects ({@link followRedirects}): with the request's default `redirect: "follow"`, up to 10 are followed; once a redirect leaves
 * the origin (another host, scheme or port), `X-API-Key`, `Authorization`, `Proxy-Authorization` and `Cookie`
 * are removed for the rest of the chain, so the API key never reaches another host. `"manual"` returns every 3xx.
 *
 * After the last attempt a retryable status is returned as the Response (the caller maps it to an error).
 *
 * @throws {APIConnectionError} when every attempt failed without a response (`cause` is the last error).
 * @throws {APITimeoutError} when the last attempt exceeded `timeoutMs`.
 * @throws {APIUserAbortError} as soon as the caller's signal aborts, also during a backoff sleep.
 * @throws {InvalidArgumentError} when `maxRetries` or `timeoutMs` is invalid.
 * @example
 * ```ts
 * import createClient from "openapi-fetch";
 * import type { paths } from "../../generated/schema.js";
 *
 * const retryingFetch = createRetryingFetch({ maxRetries: 3 });
 * const client = createClient<paths>({ baseUrl, fetch: retryingFetch });
 * const res = await retryingFetch(new Request(`${baseUrl}/api/v1/healthz`), { timeoutMs: 5_000 });
 * ```
 */
export function createRetryingFetch(config: RetryConfig = {}): RetryingFetch {
  const baseFetch: BaseFetch = config.fetch ?? nodeHttpFetch;
  const sleep = config.sleep ?? abortableSleep;
  const random = config.random ?? Math.random;
  const secrets = config.secrets ?? [];
  checkMaxRetries(config.maxRetries);
  checkTimeout(config.timeoutMs);

  function send(req: Request, headers: Headers, body: ArrayBuffer | null, signal: AbortSignal): Promise<Response> {
    const redirect = req.redirect === "error" ? "error" : "manual";
    return followRedirects(
      { url: req.url, method: req.method, headers: Object.fromEntries(headers.entries()), body },
      (hop) => baseFetch(new Request(hop.url, { method: hop.method, headers: hop.headers, body: hop.body, redirect, signal })),
      (res) => ({ status: res.status, location: res.headers.get("location"), discard: () => res.body?.cancel() }),
      { maxRedirects: req.redirect === "follow" ? MAX_REDIRECTS : 0, stripOnCrossOrigin: CREDENTIAL_HEADERS },
    );
  }

  return async function retryingFetch(req: Request, options: RetryRequestOptions = {}): Promise<Response> {
    const maxRetries = checkMaxRetries(options.maxRetries) ?? checkMaxRetries(config.maxRetries) ?? DEFAULT_MAX_RETRIES;
    const timeoutMs = checkTimeout(options.timeoutMs) ?? checkTimeout(config.timeoutMs) ?? DEFAULT_TIMEOUT_MS;
    const userSignal = options.signal === undefined ? req.signal : AbortSignal.any([options.signal, req.signal]);
    const where = { method: req.method, url: req.url, secrets };
    const aborted = (): APIUserAbortError => new APIUserAbortError({ ...where, cause: userSignal.reason });
    if (userSignal.aborted) throw aborted();

    const body = req.body === null ? null : await req.arrayBuffer();
    const idempotent = req.method === "GET" || req.method === "HEAD";
    const idempotencyKey = idempotent
      ? undefined
      : (options.idempotencyKey ?? req.headers.get(IDEMPOTENCY_KEY_HEADER) ?? `tinker-ts-retry-${randomUUID()}`);

    for (let attempt = 0; ; attempt++) {
      const headers = new Headers(req.headers);
      headers.set(RETRY_COUNT_HEADER, String(attempt));
      if (idempotencyKey !== undefined) headers.set(IDEMPOTENCY_KEY_HEADER, idempotencyKey);
      const timeoutSignal = Number.isFinite(timeoutMs) ? AbortSignal.timeout(timeoutMs) : undefined;
      const signal = timeoutSignal === undefined ? userSignal : AbortSignal.any([userSignal, timeoutSignal]);

      let response: Response | undefined;
      let failure: unknown;
      try {
        response = await send(req, headers, body, signal);
      } catch (err) {
        if (userSignal.aborted) throw aborted();
        failure = err;
      }
      const canRetry = attempt < maxRetries;
      let delay: number;
      if (response !== undefined) {
        if (!canRetry || !shouldRetryResponse(response.status, response.headers)) {
          attemptsByResponse.set(response, attempt + 1);
          return response;
        }
        delay = retryDelayMs(attempt, response.headers, random);
        await response.body?.cancel().catch(() => undefined);
      } else {
        if (!canRetry) {
          const init = { ...where, cause: failure, attempts: attempt + 1 };
          throw timeoutSignal?.aborted === true ? new APITimeoutError({ ...init, timeoutMs }) : new APIConnectionError(init);
        }
        delay = retryDelayMs(attempt, undefined, random);
      }
      try {
        await sleep(delay, userSignal);
      } catch (err) {
        if (userSignal.aborted) throw aborted();
        throw err;
      }
      if (userSignal.aborted) throw aborted();
    }
  };
}

function checkMaxRetries(value: number | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || value < 0) {
    throw new InvalidArgumentError(`maxRetries must be a whole number ≥ 0, got ${String(value)}.`);
  }
  return value;
}

function checkTimeout(value: number | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || Number.isNaN(value) || value <= 0) {
    throw new InvalidArgumentError(`timeoutMs must be a number of milliseconds > 0 (or Infinity), got ${String(value)}.`);
  }
  return value;
}
