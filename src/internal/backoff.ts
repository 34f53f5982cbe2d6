/**
 * THE backoff policy of tinker-ts: one formula for every wait between attempts (HTTP retries, future polling,
 * download reconnects, the archive wait) and one parser of the server's `retry-after-ms` / `Retry-After`.
 *
 * @module
 */

/** How delays grow: `min(initialMs · 2^attempt, maxMs)`, minus up to `jitter` of it at random. */
export interface BackoffPolicy {
  /** Delay before the first retry (attempt 0), in ms. */
  initialMs: number;
  /** Largest delay, in ms. */
  maxMs: number;
  /** Fraction of the delay removed at random, in [0, 1] (0: no jitter; 0.25: between 75 % and 100 %). */
  jitter: number;
}

/** A server-requested delay (`retry-after-ms` / `Retry-After`) is honoured only up to this many ms. */
export const MAX_RETRY_AFTER_MS = 60_000;

/**
 * The delay before retry number `attempt` (0 for the first): `min(initialMs · 2^attempt, maxMs) · (1 − jitter · random())`.
 *
 * @example
 * ```ts
 * backoffMs(0, { initialMs: 500, maxMs: 8_000, jitter: 0.25 }, () => 0); // 500
 * backoffMs(5, { initialMs: 500, maxMs: 8_000, jitter: 0 });             // 8000
 * ```
 */
export function backoffMs(attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const base = Math.min(policy.initialMs * 2 ** attempt, policy.maxMs);
  if (policy.jitter === 0) return base;
  return base * (1 - policy.jitter * Math.min(Math.max(random(), 0), 1));
}

/**
 * The delay the server asked for with `retry-after-ms` or `Retry-After` (seconds or HTTP date), when it is
 * between 0 and {@link MAX_RETRY_AFTER_MS}; otherwise `undefined`.
 *
 * @example
 * ```ts
 * retryAfterMs(new Headers({ "retry-after": "1" }));      // 1000
 * retryAfterMs(new Headers({ "retry-after-ms": "250" })); // 250
 * retryAfterMs(new Headers({ "retry-after": "3600" }));   // undefined (over 60 s)
 * ```
 */
export function retryAfterMs(headers: Headers): number | undefined {
  const inRange = (ms: number): number | undefined => (Number.isFinite(ms) && ms >= 0 && ms <= MAX_RETRY_AFTER_MS ? ms : undefined);
  const ms = headers.get("retry-after-ms");
  if (ms !== null && ms.trim() !== "") {
    const v = inRange(Number(ms));
    if (v !== undefined) return v;
  }
  const ra = headers.get("retry-after");
  if (ra === null || ra.trim() === "") return undefined;
  const seconds = Number(ra);
  if (!Number.isNaN(seconds)) return inRange(seconds * 1000);
  const date = Date.parse(ra);
  if (Number.isNaN(date)) return undefined;
  return inRange(Math.max(0, date - Date.now()));
}
