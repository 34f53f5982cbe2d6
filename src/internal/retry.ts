/**
 * THE retry policy of tinker-ts (decision 11 of PROTOCOL.md): a `fetch` wrapper that retries transient
 * failures for a time budget, enforces a per-attempt timeout, honours aborts, and keeps one idempotency key
 * per logical request.
 *
 * Retried for `retryBudgetMs` (default 300 s; `maxRetries` optionally caps the attempts inside it):
 * connection errors, per-attempt timeouts, 408, 429 and ≥500 (and any ≥400 except 409 that says
 * `x-should-retry: true`), with exponential backoff from 0.5 s capped at 30 s, or the server's `Retry-After`.
 * A 402 pauses 5 s at a time while inside the billing window (default 1 h; the last pause is cut to what is
 * left of it, so a 0 window makes a 402 an error at once), without using up attempts or budget. A 400 with an
 * empty body (a proxy's rejection) counts as a connection error, at most {@link EMPTY_400_ALLOWANCE} times per
 * client (each success gives one back). Never retried: 2xx, 3xx, 409 and other 4xx, or anything that says
 * `x-should-retry: false`. The request body bytes are identical on every attempt, so a training request keeps
 * its `seq_id`.
 *
 * @module
 */
import { randomUUID } from "node:crypto";
import { STATUS_CODES } from "node:http";
import { APIConnectionError, APITimeoutError, APIUserAbortError, InvalidArgumentError, ProxyError } from "../core/errors.js";
import type { RequestOptions } from "../core/options.js";
import { type BackoffPolicy, backoffMs, retryAfterMs, MAX_RETRY_AFTER_MS as RETRY_AFTER_CAP_MS } from "./backoff.js";
import { nodeHttpFetch } from "./net/node-fetch.js";
import { isFinalProxyError } from "./net/proxy.js";
import { CREDENTIAL_HEADERS, followRedirects } from "./net/redirect.js";
import { abortableSleep, type SleepFn } from "./sleep.js";
import type { AttemptEnd, ObservedAttempt, RequestObserver } from "./log.js";

/** Attempts are not capped unless `maxRetries` is set: the time budget ends the retries. */
export const DEFAULT_MAX_RETRIES = Number.POSITIVE_INFINITY;
/** How long a request is retried, from its first attempt, unless configured otherwise (ms). */
export const DEFAULT_RETRY_BUDGET_MS = 300_000;
/** Per-attempt time limit unless configured otherwise (ms). */
export const DEFAULT_TIMEOUT_MS = 60_000;
/** How HTTP retry delays grow: from 0.5 s, doubling, capped at 30 s, minus up to 25 % at random. */
export const RETRY_BACKOFF: BackoffPolicy = { initialMs: 500, maxMs: 30_000, jitter: 0.25 };
/** A server-requested delay (`retry-after-ms` / `Retry-After`) is honoured only up to this many ms. */
export const MAX_RETRY_AFTER_MS = RETRY_AFTER_CAP_MS;
/** The pause after a 402 (billing), repeated while inside the billing window (ms). */
export const BILLING_PAUSE_MS = 5_000;
/** How long 402s are waited out from the first one of an incident, unless configured otherwise (ms). */
export const DEFAULT_BILLING_MAX_PAUSE_MS = 3_600_000;
/** A 402 this long after the previous one starts a new billing incident (ms). */
const BILLING_INCIDENT_RESET_MS = 300_000;
/** Body-less 400s retried per client before they are errors; each success gives one back. */
export const EMPTY_400_ALLOWANCE = 16;
/** Header carrying the attempt number (0 for the first attempt). */
export const RETRY_COUNT_HEADER = "X-Tinker-Retry-Count";
/** Header carrying the idempotency key on non-GET requests, identical across attempts. */
export const IDEMPOTENCY_KEY_HEADER = "X-Idempotency-Key";

/**
 * A new idempotency key (`tinker-ts-retry-<uuid>`): one per logical request, sent on every attempt of it.
 *
 * @example
 * ```ts
 * const key = newIdempotencyKey(); // "tinker-ts-retry-3f2c…"
 * ```
 */
export function newIdempotencyKey(): string {
  return `tinker-ts-retry-${randomUUID()}`;
}
/** Redirects followed at most this many times per attempt. */
const MAX_REDIRECTS = 10;
/** Error codes that mean the request never left this machine: it cannot have been applied. */
const NOT_SENT_CODES = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "ERR_INVALID_URL"]);

/** The plain fetch the retry wrapper sends each attempt through. */
export type BaseFetch = (input: Request) => Promise<Response>;

/** One retry about to happen, as given to `onRetry` (the CLI prints these). */
export interface RetryEvent {
  /** HTTP method, e.g. `"POST"`. */
  method: string;
  /** The request's path (no host, no query). */
  path: string;
  /** The retry number: 1 for the first retry. 402 pauses repeat the number of the attempt they wait for. */
  attempt: number;
  /** How long the client waits before it (ms). */
  delayMs: number;
  /** Why, e.g. `"503 Service Unavailable"`, `"connection error (ECONNRESET)"`, `"402 Payment Required: billing pause"`. */
  reason: string;
  /** Time spent on this request so far, billing pauses excluded (ms). */
  elapsedMs: number;
  /** The request's retry budget (ms). */
  budgetMs: number;
}

/** Client-wide settings of {@link createRetryingFetch}. */
export interface RetryConfig {
  /** Caps the retries after the first attempt (default: no cap; the budget ends them). */
  maxRetries?: number;
  /** How long a request is retried, from its first attempt (ms, default 300 000). */
  retryBudgetMs?: number;
  /** Per-attempt time limit in ms, covering the response headers and body (default 60 000; `Infinity` for none). */
  timeoutMs?: number;
  /**
   * How long 402 answers are waited out per billing incident (ms, default 3 600 000). A function is asked at
   * each 402, so a value learnt later (the client config's `billing_exception_max_pause_duration_sec`) applies.
   */
  billingMaxPauseMs?: number | (() => number);
  /** The fetch each attempt goes through (default {@link nodeHttpFetch}, node:http with keep-alive). */
  fetch?: BaseFetch;
  /** Sleep between attempts (default {@link abortableSleep}); inject to record delays in tests. */
  sleep?: SleepFn;
  /** Clock in ms for the budget (default `Date.now`); inject with `sleep` to run budgets on fake time. */
  now?: () => number;
  /** Random source in [0, 1) for jitter (default `Math.random`). */
  random?: () => number;
  /** Called before each wait for a retry (and each 402 pause). */
  onRetry?: (event: RetryEvent) => void;
  /** Strings that must never appear in error messages (the API key). */
  secrets?: readonly (string | undefined)[];
  /** Told of every attempt (debug lines, `onRequest` / `onResponse`); absent when nothing listens. */
  observer?: RequestObserver | undefined;
}

/**
 * Per-request overrides of {@link RetryConfig}: the {@link RequestOptions} (`signal` is combined with
 * `req.signal` and also aborts a backoff sleep; `retryBudgetMs` and `maxRetries` bound the retries) plus the
 * idempotency key.
 */
export interface RetryRequestOptions extends RequestOptions {
  /** Idempotency key to send (non-GET only); otherwise a request's own `X-Idempotency-Key` or a new UUID. */
  idempotencyKey?: string;
  /** Statuses returned to the caller at once instead of being retried or paused on (e.g. the archive endpoint's 503; 402). */
  noRetryStatuses?: readonly number[];
}

/** A fetch that retries; usable as openapi-fetch's `fetch` option. */
export type RetryingFetch = (req: Request, options?: RetryRequestOptions) => Promise<Response>;

/** How a response was arrived at, when it came from a {@link RetryingFetch}. */
export interface RetryInfo {
  /** Attempts sent (402 pauses included). */
  attempts: number;
  /** Time spent, billing pauses excluded (ms). */
  elapsedMs: number;
  /** This retryable status was returned because the budget or `maxRetries` ran out. */
  exhausted: boolean;
  /**
   * An earlier attempt may have been applied by the server although its answer was lost (no response, a
   * timeout, or a 5xx). Then a 409 "already in that state" or a 404 on delete may be the earlier attempt's work.
   */
  outcomeUnknown: boolean;
}

const infoByResponse = new WeakMap<Response, RetryInfo>();

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
  return infoByResponse.get(response)?.attempts;
}

/**
 * The {@link RetryInfo} of a response from a {@link RetryingFetch}; otherwise `undefined`.
 *
 * @example
 * ```ts
 * const res = await createRetryingFetch()(new Request("http://127.0.0.1:8000/api/v1/healthz"));
 * retryInfoOf(res)?.outcomeUnknown; // false when no earlier attempt was lost
 * ```
 */
export function retryInfoOf(response: Response): RetryInfo | undefined {
  return infoByResponse.get(response);
}

/**
 * What to tell the user after retries ran out: whether the request may have been applied, and what to do.
 *
 * @example
 * ```ts
 * exhaustionNote(true);  // "The request may have been applied: ..."
 * ```
 */
export function exhaustionNote(mayHaveBeenApplied: boolean): string {
  return mayHaveBeenApplied
    ? "The request may have been applied (an earlier attempt's answer was lost): check the server's state (for training, resume from the last checkpoint) instead of resubmitting it blindly, or before sending it again."
    : "The request was not applied; try again later, or give it a larger retryBudgetMs.";
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
 * `Retry-After` (seconds or HTTP date) when it is between 0 and 60 s; otherwise
 * {@link backoffMs} with {@link RETRY_BACKOFF}: `min(500 · 2^retryIndex, 30 000) · (1 − 0.25 · random())`.
 *
 * @example
 * ```ts
 * retryDelayMs(0, new Headers({ "retry-after": "2" }), Math.random); // 2000
 * retryDelayMs(3, undefined, () => 0);                              // 4000
 * ```
 */
export function retryDelayMs(retryIndex: number, headers: Headers | undefined, random: () => number = Math.random): number {
  const fromServer = headers === undefined ? undefined : retryAfterMs(headers);
  if (fromServer !== undefined) return fromServer;
  return backoffMs(retryIndex, RETRY_BACKOFF, random);
}

/** The first `code` on an error or its causes, e.g. `"ECONNRESET"`. */
function errorCode(err: unknown): string | undefined {
  for (let cur: unknown = err, depth = 0; cur !== undefined && cur !== null && depth < 5; depth++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === "string") return code;
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * Creates THE retrying fetch. Each call is one logical request: its body is buffered once and re-sent
 * byte-for-byte on every attempt, with `X-Tinker-Retry-Count: <n>` and (non-GET/HEAD) one
 * `X-Idempotency-Key` reused across attempts. Retries run for the request's time budget (see the module
 * documentation); every wait ends at once when the caller's signal aborts.
 *
 * Redirects: with the request's default `redirect: "follow"`, up to 10 are followed; once a redirect leaves
 * the origin (another host, scheme or port), `X-API-Key`, `Authorization`, `Proxy-Authorization` and `Cookie`
 * are removed for the rest of the chain, so the API key never reaches another host. `"manual"` returns every 3xx.
 *
 * When the budget runs out on a retryable status, that Response is returned (the caller maps it to an error;
 * {@link retryInfoOf} says whether an earlier attempt may have been applied).
 *
 * @throws {APIConnectionError} when the budget ran out without a response (`cause` is the last error); its
 *   message says whether the request may have been applied.
 * @throws {APITimeoutError} when the last attempt exceeded `timeoutMs`.
 * @throws {APIUserAbortError} as soon as the caller's signal aborts, also during a backoff sleep.
 * @throws {InvalidArgumentError} when `maxRetries`, `retryBudgetMs` or `timeoutMs` is invalid.
 * @example
 * ```ts
 * import createClient from "openapi-fetch";
 * import type { paths } from "../../generated/schema.js";
 *
 * const retryingFetch = createRetryingFetch({ retryBudgetMs: 60_000 });
 * const client = createClient<paths>({ baseUrl, fetch: retryingFetch });
 * const res = await retryingFetch(new Request(`${baseUrl}/api/v1/healthz`), { timeoutMs: 5_000 });
 * ```
 */
export function createRetryingFetch(config: RetryConfig = {}): RetryingFetch {
  const baseFetch: BaseFetch = config.fetch ?? nodeHttpFetch;
  const sleep = config.sleep ?? abortableSleep;
  const now = config.now ?? Date.now;
  const random = config.random ?? Math.random;
  const secrets = config.secrets ?? [];
  const observer = config.observer;
  const configuredBilling = config.billingMaxPauseMs;
  if (typeof configuredBilling !== "function") checkBudget(configuredBilling, "billingMaxPauseMs");
  const billingMaxPauseMs = (): number => {
    const ms = typeof configuredBilling === "function" ? configuredBilling() : configuredBilling;
    return typeof ms === "number" && ms >= 0 ? ms : DEFAULT_BILLING_MAX_PAUSE_MS;
  };
  checkMaxRetries(config.maxRetries);
  checkBudget(config.retryBudgetMs, "retryBudgetMs");
  checkTimeout(config.timeoutMs);
  // Client-wide state: the body-less-400 allowance and the current billing incident.
  let empty400Allowance = EMPTY_400_ALLOWANCE;
  let billingFirst: number | undefined;
  let billingLast: number | undefined;

  /**
   * How long a 402 now should pause: {@link BILLING_PAUSE_MS}, cut to what is left of the billing window; 0 once
   * the window is over (the 402 is then the answer). Updates the incident.
   */
  function billingPause(): number {
    const t = now();
    if (billingLast !== undefined && t - billingLast > BILLING_INCIDENT_RESET_MS) {
      billingFirst = undefined;
      billingLast = undefined;
    }
    const left = billingMaxPauseMs() - (t - (billingFirst ?? t));
    if (left <= 0) return 0;
    billingFirst ??= t;
    billingLast = t;
    return Math.min(BILLING_PAUSE_MS, left);
  }

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
    const budgetMs = checkBudget(options.retryBudgetMs, "retryBudgetMs") ?? config.retryBudgetMs ?? DEFAULT_RETRY_BUDGET_MS;
    const timeoutMs = checkTimeout(options.timeoutMs) ?? checkTimeout(config.timeoutMs) ?? DEFAULT_TIMEOUT_MS;
    const userSignal = options.signal === undefined ? req.signal : AbortSignal.any([options.signal, req.signal]);
    const where = { method: req.method, url: req.url, secrets };
    const path = safePath(req.url);
    const aborted = (): APIUserAbortError => new APIUserAbortError({ ...where, cause: userSignal.reason });
    if (userSignal.aborted) throw aborted();

    const body = req.body === null ? null : await req.arrayBuffer();
    const idempotent = req.method === "GET" || req.method === "HEAD";
    const idempotencyKey = idempotent
      ? undefined
      : (options.idempotencyKey ?? req.headers.get(IDEMPOTENCY_KEY_HEADER) ?? newIdempotencyKey());

    const started = now();
    let paused = 0; // billing pauses do not use up the budget
    let retries = 0;
    let outcomeUnknown = false;
    const elapsed = (): number => now() - started - paused;
    const wait = async (delay: number, reason: string, attempt: number): Promise<void> => {
      config.onRetry?.({ method: req.method, path, attempt, delayMs: delay, reason, elapsedMs: elapsed(), budgetMs });
      try {
        await sleep(delay, userSignal);
      } catch (err) {
        if (userSignal.aborted) throw aborted();
        throw err;
      }
      if (userSignal.aborted) throw aborted();
    };

    for (let attempt = 0; ; attempt++) {
      const headers = new Headers(req.headers);
      headers.set(RETRY_COUNT_HEADER, String(attempt));
      if (idempotencyKey !== undefined) headers.set(IDEMPOTENCY_KEY_HEADER, idempotencyKey);
      const timeoutSignal = Number.isFinite(timeoutMs) ? AbortSignal.timeout(timeoutMs) : undefined;
      const signal = timeoutSignal === undefined ? userSignal : AbortSignal.any([userSignal, timeoutSignal]);

      let response: Response | undefined;
      let failure: unknown;
      let proxy400: Response | undefined;
      // Only when someone listens (debug level or a hook): otherwise nothing is built per attempt.
      const observed: ObservedAttempt | undefined = observer?.start(req.method, req.url, headers, attempt + 1, "api");
      try {
        response = await send(req, headers, body, signal);
      } catch (err) {
        if (userSignal.aborted) {
          if (observed !== undefined) observer?.end(observed, { error: "aborted by the caller" });
          throw aborted();
        }
        if (isFinalProxyError(err)) {
          // A proxy's 407/403: retrying cannot help.
          if (observed !== undefined) observer?.end(observed, { error: describeFailure(err) });
          throw err;
        }
        failure = err;
      }
      if (observed !== undefined) observed.doneAt = performance.now();
      const info = (exhausted: boolean): RetryInfo => ({ attempts: attempt + 1, elapsedMs: elapsed(), exhausted, outcomeUnknown });

      const billingMs = response?.status === 402 && options.noRetryStatuses?.includes(402) !== true ? billingPause() : 0;
      if (response !== undefined && billingMs > 0) {
        await response.body?.cancel().catch(() => undefined);
        const billingReason = "402 Payment Required: paused for billing";
        if (observed !== undefined) {
          observer?.end(observed, { status: 402, headers: response.headers, retry: { reason: billingReason, delayMs: billingMs } });
        }
        const before = now();
        await wait(billingMs, billingReason, retries + 1);
        paused += now() - before;
        continue;
      }
      let reason: string;
      let mayHaveApplied: boolean;
      let serverDelay: number | undefined;
      if (response !== undefined) {
        if (response.status === 400 && empty400Allowance > 0 && options.noRetryStatuses?.includes(400) !== true) {
          const text = await response.arrayBuffer().catch(() => new ArrayBuffer(0));
          if (text.byteLength > 0) {
            response = new Response(text, { status: response.status, statusText: response.statusText, headers: response.headers });
          } else {
            // A body-less 400 comes from a proxy, not the server: treat it like a dropped connection.
            empty400Allowance--;
            proxy400 = new Response(null, { status: 400, statusText: response.statusText, headers: response.headers });
            response = undefined;
            failure = new TypeError("fetch failed: a 400 with an empty body (rejected by a proxy)");
          }
        }
      }
      if (response !== undefined) {
        const retryable =
          shouldRetryResponse(response.status, response.headers) && options.noRetryStatuses?.includes(response.status) !== true;
        if (!retryable) {
          if (response.ok) empty400Allowance = Math.min(EMPTY_400_ALLOWANCE, empty400Allowance + 1);
          infoByResponse.set(response, info(false));
          if (observed !== undefined) observer?.end(observed, { status: response.status, headers: response.headers });
          return response;
        }
        reason = `${response.status} ${STATUS_CODES[response.status] ?? ""}`.trim();
        mayHaveApplied = response.status >= 500;
        serverDelay = retryAfterMs(response.headers); // an HTTP date is wall-clock time
      } else {
        const code = errorCode(failure);
        const timedOut = timeoutSignal?.aborted === true;
        reason =
          proxy400 !== undefined
            ? "400 with an empty body (a proxy's rejection)"
            : timedOut
              ? `timed out after ${timeoutMs} ms`
              : `connection error (${code ?? describeFailure(failure)})`;
        mayHaveApplied =
          proxy400 === undefined && !(failure instanceof ProxyError) && (timedOut || code === undefined || !NOT_SENT_CODES.has(code));
      }
      const remaining = budgetMs - elapsed();
      const last = response ?? proxy400;
      const ended = (): AttemptEnd => ({ status: last?.status, headers: last?.headers, error: last === undefined ? reason : undefined });
      if (retries >= maxRetries || remaining <= 0) {
        if (observed !== undefined) observer?.end(observed, ended());
        outcomeUnknown ||= mayHaveApplied;
        if (last !== undefined) {
          infoByResponse.set(last, info(true));
          return last;
        }
        if (failure instanceof ProxyError) throw failure; // the proxy's own words say more than "could not reach"
        const init = { ...where, cause: failure, attempts: attempt + 1 };
        const note = ` ${exhaustionNote(outcomeUnknown)}`;
        if (timeoutSignal?.aborted === true) {
          const err = new APITimeoutError({ ...init, timeoutMs });
          throw new APITimeoutError({ ...init, timeoutMs, message: err.message + note });
        }
        const err = new APIConnectionError(init);
        throw new APIConnectionError({ ...init, message: err.message + note });
      }
      outcomeUnknown ||= mayHaveApplied;
      await response?.body?.cancel().catch(() => undefined);
      const delay = Math.min(serverDelay ?? retryDelayMs(retries, undefined, random), remaining);
      if (observed !== undefined) observer?.end(observed, { ...ended(), retry: { reason, delayMs: delay } });
      retries++;
      await wait(delay, reason, retries);
    }
  };
}

function describeFailure(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** The path of a URL, for retry events (never the host or query). */
function safePath(url: string): string {
  try {
    return new URL(url).pathname;
  } catch {
    return "";
  }
}

function checkBudget(value: number | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || Number.isNaN(value) || value < 0) {
    throw new InvalidArgumentError(`${name} must be a number of milliseconds ≥ 0 (or Infinity), got ${String(value)}.`);
  }
  return value;
}

function checkMaxRetries(value: number | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (value !== Number.POSITIVE_INFINITY && (!Number.isInteger(value) || value < 0)) {
    throw new InvalidArgumentError(`maxRetries must be a whole number ≥ 0 (or Infinity), got ${String(value)}.`);
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
