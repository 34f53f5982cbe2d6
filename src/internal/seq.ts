/**
 * Request ordering for training clients: seq_id allocation at call time, in-order submission, and fail-stop.
 *
 * The Tinker service executes a model's training requests strictly in `seq_id` order. The client's job is to
 * number requests in the order the user called them (synchronously, before any `await`) and to send them in
 * that order: request N+1 is not sent until the submit of request N has returned (or failed for good).
 * Results are never awaited for ordering; futures are polled concurrently. (A call split into chunks is one
 * turn covering its seq ids; it may hold the turn until its chunks' results are in.)
 *
 * Once an operation failed for good ({@link SeqGate.stop}), every turn after it is refused without running
 * (PROTOCOL decision 13).
 *
 * @module
 */
import type { FailedOperation } from "../core/training-errors.js";

/**
 * Allocates `seq_id`s, serializes submits for one model, and stops for good after a failure.
 *
 * The model's create (or create-via-load) is implicitly seq 0, so the first request after it gets 1.
 *
 * @example
 * ```ts
 * const send = async (seqId: number): Promise<string> => `req-${seqId}`;
 * const refused = (): Error => new Error("stopped");
 * const seq = new SeqGate();
 * const a = seq.next(); // 1
 * const b = seq.next(3); // 2 (2, 3 and 4 are taken)
 * // b's turn waits for a's, even if started first:
 * const pb = seq.inTurn(b, 3, () => send(b), refused);
 * const pa = seq.inTurn(a, 1, () => send(a), refused);
 * ```
 */
export class SeqGate {
  #nextSeq: number;
  #turn: number;
  #stopped: FailedOperation | undefined;
  readonly #waiters = new Map<number, () => void>();

  /** Starts numbering at `first` (default 1: the create is seq 0). */
  constructor(first = 1) {
    this.#nextSeq = first;
    this.#turn = first;
  }

  /** Takes the next `count` (default 1) consecutive seq_ids and returns the first. Synchronous: call order equals seq order. */
  next(count = 1): number {
    const first = this.#nextSeq;
    this.#nextSeq += count;
    return first;
  }

  /** The seq_id the next call to {@link next} will return. */
  get peek(): number {
    return this.#nextSeq;
  }

  /** The operation that stopped this gate, if any. */
  get stopped(): FailedOperation | undefined {
    return this.#stopped;
  }

  /** Stops the gate for good: every turn not yet started is refused. The first failure is kept. */
  stop(failure: FailedOperation): void {
    this.#stopped ??= failure;
  }

  /**
   * Runs `body` once every lower seq_id's turn has finished, then advances the turn past the `count` seq_ids
   * starting at `first`, whatever `body` did. When the gate was stopped before this turn, `body` does not run
   * and the turn rejects with `refused()`.
   */
  async inTurn<T>(first: number, count: number, body: () => Promise<T>, refused: () => Error): Promise<T> {
    if (first !== this.#turn) {
      await new Promise<void>((resolve) => this.#waiters.set(first, resolve));
    }
    try {
      if (this.#stopped !== undefined) throw refused();
      return await body();
    } finally {
      this.#advance(count);
    }
  }

  #advance(count: number): void {
    this.#turn += count;
    const wake = this.#waiters.get(this.#turn);
    if (wake !== undefined) {
      this.#waiters.delete(this.#turn);
      wake();
    }
  }
}
