/**
 * Checkpoint TTLs: the service minimum, the client-side check and its error (an {@link InvalidArgumentError}),
 * used by training saves, `setCheckpointTtlFromTinkerPath`, the ledger and retention.
 *
 * @module
 */
import { InvalidArgumentError } from "./errors.js";

/**
 * The smallest checkpoint TTL the service accepts, in seconds (one hour).
 *
 * @example
 * ```ts
 * const ttl = Math.max(MIN_CHECKPOINT_TTL_SECONDS, 2 * 86_400);
 * ```
 */
export const MIN_CHECKPOINT_TTL_SECONDS = 3600;

/**
 * A checkpoint TTL was rejected client-side before anything was sent (an {@link InvalidArgumentError}): it must be a whole number of seconds
 * ≥ 3600 (the service minimum), or `null` to remove the expiry.
 *
 * @example
 * ```ts
 * try {
 *   await rest.setCheckpointTtlFromTinkerPath("tinker://run-1/weights/final", 60);
 * } catch (err) {
 *   if (err instanceof InvalidTtlError) console.error(err.message); // says the minimum is 3600 s
 * }
 * ```
 */
export class InvalidTtlError extends InvalidArgumentError {
  override name: string = "InvalidTtlError";
  /** The rejected value, unchanged. */
  readonly ttlSeconds: unknown;

  /** Builds the error; the message shows the value and what is allowed. */
  constructor(ttlSeconds: unknown, reason?: string) {
    const shown = typeof ttlSeconds === "number" ? String(ttlSeconds) : (JSON.stringify(ttlSeconds) ?? String(ttlSeconds));
    super(
      `Invalid checkpoint TTL ${shown}: ${reason ?? `it must be a whole number of seconds ≥ ${MIN_CHECKPOINT_TTL_SECONDS}`}. ` +
        `Use at least ${MIN_CHECKPOINT_TTL_SECONDS} (1 hour), e.g. 604800 for 7 days, or null to remove the expiry. Nothing was sent.`,
    );
    this.ttlSeconds = ttlSeconds;
  }
}

/**
 * Checks a checkpoint TTL before anything is sent: `undefined`/`null` (never expires) or a whole number of
 * seconds ≥ {@link MIN_CHECKPOINT_TTL_SECONDS}. Used by `saveState`, `saveWeightsForSampler` and
 * `setCheckpointTtlFromTinkerPath`.
 *
 * @throws {InvalidTtlError} for anything else.
 * @example
 * ```ts
 * validateTtlSeconds(7 * 86_400); // ok
 * validateTtlSeconds(60);         // throws InvalidTtlError
 * ```
 */
export function validateTtlSeconds(ttlSeconds: unknown): void {
  if (ttlSeconds === undefined || ttlSeconds === null) return;
  if (typeof ttlSeconds !== "number" || !Number.isSafeInteger(ttlSeconds)) {
    throw new InvalidTtlError(ttlSeconds, "it must be a whole number of seconds or null");
  }
  if (ttlSeconds < MIN_CHECKPOINT_TTL_SECONDS) {
    throw new InvalidTtlError(ttlSeconds, `it is below the service minimum of ${MIN_CHECKPOINT_TTL_SECONDS} seconds`);
  }
}
