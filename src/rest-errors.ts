/**
 * Small error classes used by the REST client, the checkpoint download and the CLI, on top of the core
 * hierarchy in `core/errors.ts` (all extend {@link TinkerError}).
 *
 * @module
 */
import { InvalidArgumentError, TinkerError } from "./core/errors.js";

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
    const shown = typeof ttlSeconds === "number" ? String(ttlSeconds) : JSON.stringify(ttlSeconds) ?? String(ttlSeconds);
    super(
      `Invalid checkpoint TTL ${shown}: ${reason ?? `it must be a whole number of seconds ≥ ${MIN_CHECKPOINT_TTL_SECONDS}`}. ` +
        `Use at least ${MIN_CHECKPOINT_TTL_SECONDS} (1 hour), e.g. 604800 for 7 days, or null to remove the expiry. Nothing was sent.`,
    );
    this.ttlSeconds = ttlSeconds;
  }
}

/**
 * A downloaded checkpoint archive extracted fine but does not contain the `checkpoint_complete` marker, so
 * the checkpoint was saved only partly. Nothing was installed.
 *
 * @example
 * ```ts
 * try {
 *   await downloadCheckpoint(rest, "tinker://run-1/weights/0001");
 * } catch (err) {
 *   if (err instanceof IncompleteCheckpointError) console.error("re-save the checkpoint:", err.message);
 * }
 * ```
 */
export class IncompleteCheckpointError extends TinkerError {
  override name: string = "IncompleteCheckpointError";
  /** The checkpoint's tinker path. */
  readonly tinkerPath: string;

  /** Builds the error for the checkpoint at `tinkerPath`. */
  constructor(tinkerPath: string, marker: string) {
    super(
      `The archive of ${tinkerPath} has no "${marker}" marker: the checkpoint was not saved completely. ` +
        `Nothing was installed; save the checkpoint again (or pick another one) and retry the download.`,
    );
    this.tinkerPath = tinkerPath;
  }
}

/**
 * A checkpoint archive could not be read or extracted (corrupt or truncated tar, disk full, ...), for a reason
 * other than an unsafe entry. Nothing was installed. `cause` holds the underlying error.
 *
 * @example
 * ```ts
 * try {
 *   await downloadCheckpoint(rest, "tinker://run-1/weights/0001");
 * } catch (err) {
 *   if (err instanceof ArchiveExtractionError) console.error(err.message, err.cause);
 * }
 * ```
 */
export class ArchiveExtractionError extends TinkerError {
  override name: string = "ArchiveExtractionError";
  /** The checkpoint's tinker path. */
  readonly tinkerPath: string;

  /** Builds the error; `detail` says what went wrong. */
  constructor(tinkerPath: string, detail: string, options?: ErrorOptions) {
    super(`Extracting the archive of ${tinkerPath} failed: ${detail}. Nothing was installed; retry the download.`, options);
    this.tinkerPath = tinkerPath;
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
