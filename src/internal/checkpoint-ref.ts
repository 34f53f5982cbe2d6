/**
 * Checkpoint coordinates as the REST client checks them (from a run id and `weights/<name>`, or a tinker path), and
 * the wording of a checkpoint that is not found.
 *
 * @module
 */
import { InvalidArgumentError, NotFoundError } from "../core/errors.js";
import { type CheckpointKind, parseTinkerPath, splitCheckpointId } from "../core/tinker-path.js";
import { rewordAPIError } from "./reword.js";

/** Checkpoint coordinates after validation. */
export interface CheckpointRef {
  runId: string;
  kind: CheckpointKind;
  name: string;
  tinkerPath: string;
}

/**
 * Refuses a training run id that is empty or has a `/` (nothing is sent).
 *
 * @throws {InvalidArgumentError} naming `what`.
 * @example
 * ```ts
 * checkRunId("sess-0:train:0"); // fine
 * ```
 */
export function checkRunId(runId: string, what = "training run id"): void {
  if (typeof runId !== "string" || runId === "" || runId.includes("/")) {
    throw new InvalidArgumentError(`Invalid ${what} ${JSON.stringify(runId)}: it must be a non-empty string without "/".`);
  }
}

/**
 * The coordinates of a tinker path.
 *
 * @throws {InvalidTinkerPathError} when it is malformed.
 * @example
 * ```ts
 * refFromPath("tinker://run-1/weights/final").name; // "final"
 * ```
 */
export function refFromPath(tinkerPath: string): CheckpointRef {
  const p = parseTinkerPath(tinkerPath);
  return { runId: p.trainingRunId, kind: p.checkpointKind, name: p.checkpointName, tinkerPath: p.tinkerPath };
}

/**
 * The coordinates of a run id and a checkpoint id (`weights/<name>` or `sampler_weights/<name>`).
 *
 * @throws {InvalidArgumentError} when either is malformed.
 * @example
 * ```ts
 * checkpointRef("run-1", "weights/final").tinkerPath; // "tinker://run-1/weights/final"
 * ```
 */
export function checkpointRef(runId: string, checkpointId: string): CheckpointRef {
  checkRunId(runId);
  const { kind, name } = splitCheckpointId(checkpointId);
  return { runId, kind, name, tinkerPath: `tinker://${runId}/${kind}/${name}` };
}

/**
 * A 404 becomes a {@link NotFoundError} whose message names the checkpoint and suggests expiry or deletion; other
 * errors are returned as they are.
 *
 * @example
 * ```ts
 * const err: unknown = new Error("boom");
 * throw checkpointNotFound("tinker://run-1/weights/final", err);
 * ```
 */
export function checkpointNotFound(tinkerPath: string, err: unknown): unknown {
  if (!(err instanceof NotFoundError)) return err;
  return rewordAPIError(
    err,
    `Checkpoint ${tinkerPath} was not found (expired or deleted?). Check the path with \`tinker-ts checkpoint list --run-id <run>\`; checkpoints are removed when their TTL runs out. (${err.message})`,
  );
}

/**
 * Runs `fn`, re-throwing a 404 as {@link checkpointNotFound} does.
 *
 * @example
 * ```ts
 * await withCheckpointNotFound("tinker://run-1/weights/final", () => rest.deleteCheckpointFromTinkerPath("tinker://run-1/weights/final"));
 * ```
 */
export async function withCheckpointNotFound<T>(tinkerPath: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw checkpointNotFound(tinkerPath, err);
  }
}
