/**
 * The options object every public method ends with, and how it maps onto transport call options.
 *
 * @module
 */
import type { CallOptions } from "../internal/transport.js";

/** Options every method that talks to the server accepts. */
export interface RequestOptions {
  /** Aborts the request (→ `APIUserAbortError`), also while waiting to retry. */
  signal?: AbortSignal;
  /** Per-attempt HTTP time limit in ms. */
  timeoutMs?: number;
  /** Retries after connection errors, 408, 429 and ≥500 (default: the client's). */
  maxRetries?: number;
}

/** Picks the transport options out of a method's options object (dropping the method's own fields). */
export function callOptionsOf(options: RequestOptions | undefined): CallOptions {
  const out: CallOptions = {};
  if (options?.signal !== undefined) out.signal = options.signal;
  if (options?.timeoutMs !== undefined) out.timeoutMs = options.timeoutMs;
  if (options?.maxRetries !== undefined) out.maxRetries = options.maxRetries;
  return out;
}
