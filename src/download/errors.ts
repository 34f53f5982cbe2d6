/**
 * The errors of a checkpoint download: the destination exists, an archive entry is unsafe, the archive cannot be
 * extracted, or the checkpoint is incomplete. All extend {@link TinkerError}; nothing is installed when one is thrown.
 *
 * @module
 */
import { TinkerError } from "../core/errors.js";
import { quote } from "../internal/error-text.js";

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
    super(`Refusing to extract archive entry ${quote(entry)}: ${reason}. The archive may be corrupt or malicious; nothing was installed.`);
    this.entry = entry;
    this.reason = reason;
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
 * The checkpoint's archive changed on the server while it was being downloaded (it was saved again), and kept
 * changing after one fresh start. Nothing was installed: the bytes of two versions are never mixed.
 *
 * @example
 * ```ts
 * try {
 *   await downloadCheckpoint(rest, tinkerPath);
 * } catch (err) {
 *   if (err instanceof ArchiveChangedError) console.error("still being written; try again later:", err.message);
 *   else throw err;
 * }
 * ```
 */
export class ArchiveChangedError extends TinkerError {
  override name: string = "ArchiveChangedError";
  /** The checkpoint's tinker path. */
  readonly tinkerPath: string;

  /** Builds the error; the message names the checkpoint and what to do. */
  constructor(tinkerPath: string) {
    super(
      `The archive of ${tinkerPath} changed while it was being downloaded (the checkpoint was overwritten), again after a fresh start. Nothing was installed. Download it again once nothing is saving to that name.`,
    );
    this.tinkerPath = tinkerPath;
  }
}
