/**
 * Picking the {@link RequestOptions} out of a method's options object, so a method's own fields (names, flags,
 * callbacks) are never handed to the transport or to another method.
 *
 * @module
 */
import type { RequestOptions } from "../core/options.js";

/**
 * The {@link RequestOptions} fields of `options` (those that are set), and nothing else.
 *
 * @example
 * ```ts
 * const options: PruneOptions = { keepLast: 3, timeoutMs: 5_000 };
 * requestOptionsOf(options); // { timeoutMs: 5000 }
 * ```
 */
export function requestOptionsOf(options: RequestOptions | undefined): RequestOptions {
  const out: RequestOptions = {};
  if (options?.signal !== undefined) out.signal = options.signal;
  if (options?.timeoutMs !== undefined) out.timeoutMs = options.timeoutMs;
  if (options?.maxRetries !== undefined) out.maxRetries = options.maxRetries;
  if (options?.retryBudgetMs !== undefined) out.retryBudgetMs = options.retryBudgetMs;
  return out;
}
