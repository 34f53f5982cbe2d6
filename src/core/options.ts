/**
 * The options object every public method that talks to the server ends with. Methods extend
 * {@link RequestOptions} with what they add (`ForwardBackwardOptions`, `PageOptions`, ...).
 *
 * @module
 */

/**
 * Options every method that talks to the server accepts. For a training operation, `signal` aborts the
 * submit (if not sent yet) and waiting on the future via `await`, and `timeoutMs` limits each HTTP attempt of
 * the submit (use `future.result({ timeoutMs })` to bound the wait).
 *
 * @example
 * ```ts
 * const options: RequestOptions = { signal: AbortSignal.timeout(30_000), timeoutMs: 10_000, retryBudgetMs: 60_000 };
 * await rest.listTrainingRuns(options);
 * ```
 */
export interface RequestOptions {
  /** Aborts the request (→ `APIUserAbortError`), also while waiting to retry. */
  signal?: AbortSignal;
  /** Per-attempt HTTP time limit in ms. */
  timeoutMs?: number;
  /**
   * How long connection errors, 408, 429 and ≥500 are retried, in ms (default: the client's, 300 000). For a
   * training operation it also bounds a run of failed polls of its result.
   */
  retryBudgetMs?: number;
  /** Caps the retries inside the budget (default: the client's; no cap). */
  maxRetries?: number;
}

/**
 * The options of a training operation: {@link RequestOptions} (the same type, under the name earlier releases used).
 *
 * @example
 * ```ts
 * const options: TrainingCallOptions = { signal: AbortSignal.timeout(60_000) };
 * await training.optimStep({ learning_rate: 1e-4 }, options);
 * ```
 */
export type TrainingCallOptions = RequestOptions;

/**
 * The options of a {@link RestClient} method: {@link RequestOptions} (the same type, under the name earlier releases used).
 *
 * @example
 * ```ts
 * const options: RestRequestOptions = { timeoutMs: 5_000 };
 * await rest.listTrainingRuns(options);
 * ```
 */
export type RestRequestOptions = RequestOptions;
