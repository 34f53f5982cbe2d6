/**
 * Errors of the training client's ordering: fail-stop (PROTOCOL decision 13) and datum validation.
 *
 * @module
 */
import { InvalidArgumentError, TinkerError } from "./errors.js";

/** The operation that stopped a training client. */
export interface FailedOperation {
  /** The operation, e.g. `"forward_backward"`. */
  operation: string;
  /** Its (first) seq_id. */
  seqId: number;
  /** What went wrong (the error the operation's own future rejected with). */
  cause: unknown;
}

/**
 * A training client stopped after an operation failed for good, and refuses to send anything after it
 * (PROTOCOL decision 13). "For good" means its submit ended without the server's request id (retries or the
 * retry budget exhausted, a 4xx other than 409, an abort or timeout once it had its seq_id), or a chunk of a
 * split `forward`/`forwardBackward` failed in any way. The model may hold part of that operation's effect, so
 * nothing queued after it is sent: a checkpoint never silently misses an operation, and no step runs on
 * partial gradients.
 *
 * Recover by resuming from the last checkpoint in a new training client
 * (`createTrainingClientFromStateWithOptimizer`, which `resumeOrStart` calls for you).
 *
 * @example
 * ```ts
 * try {
 *   await training.optimStep({ learning_rate: 1e-4 });
 * } catch (err) {
 *   if (err instanceof TrainingClientStoppedError) {
 *     console.error(`stopped by ${err.failedOperation} (seq_id ${err.failedSeqId})`);
 *     // resume from the last checkpoint, e.g. with resumeOrStart(service, ledger, { ... })
 *   } else throw err;
 * }
 * ```
 */
export class TrainingClientStoppedError extends TinkerError {
  override name: string = "TrainingClientStoppedError";
  /** The model whose client stopped. */
  readonly modelId: string;
  /** The operation that failed for good, e.g. `"forward_backward"`. */
  readonly failedOperation: string;
  /** The failed operation's (first) seq_id. */
  readonly failedSeqId: number;
  /** The operation refused now, e.g. `"optim_step"`. */
  readonly operation: string;
  /** The refused operation's seq_id, when it had taken one (it is never sent). */
  readonly seqId: number | undefined;

  /** Builds the error; `cause` is the failed operation's error. */
  constructor(init: { modelId: string; failed: FailedOperation; operation: string; seqId?: number }) {
    const { failed } = init;
    const reason = failed.cause instanceof Error ? failed.cause.message : String(failed.cause);
    const what = init.seqId === undefined ? init.operation : `${init.operation} (seq_id ${init.seqId})`;
    super(
      `${what} was not sent: training client ${init.modelId} stopped after ${failed.operation} (seq_id ${failed.seqId}) failed for good (${reason}). ` +
        "The model may hold part of that operation's effect, so nothing after it is sent. Resume from the last checkpoint " +
        "in a new training client (createTrainingClientFromStateWithOptimizer, or resumeOrStart does it).",
      { cause: failed.cause },
    );
    this.modelId = init.modelId;
    this.failedOperation = failed.operation;
    this.failedSeqId = failed.seqId;
    this.operation = init.operation;
    this.seqId = init.seqId;
  }
}

/**
 * A datum is malformed: a missing or mistyped loss input, a shape that does not match its data, a CSR tensor
 * whose indices are inconsistent. Thrown before anything is sent; `path` names the offending field, e.g.
 * `data[3].loss_fn_inputs.weights.shape`.
 *
 * @example
 * ```ts
 * try {
 *   training.forwardBackward(batch, "importance_sampling");
 * } catch (err) {
 *   if (err instanceof InvalidDatumError) console.error(err.path, err.message);
 *   else throw err;
 * }
 * ```
 */
export class InvalidDatumError extends InvalidArgumentError {
  override name: string = "InvalidDatumError";
  /** The offending field, e.g. `data[3].loss_fn_inputs.weights`. */
  readonly path: string;

  /** Builds the error for the field at `path`. */
  constructor(path: string, problem: string) {
    super(`${path} ${problem}`);
    this.path = path;
  }
}
