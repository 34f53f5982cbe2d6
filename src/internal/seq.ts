/**
 * Request ordering for training clients: seq_id allocation at call time and in-order submission.
 *
 * The Tinker service executes a model's training requests strictly in `seq_id` order. The client's job is to
 * number requests in the order the user called them (synchronously, before any `await`) and to send them in
 * that order: request N+1 is not sent until the submit of request N has returned (or failed for good).
 * Results are never awaited for ordering; futures are polled concurrently.
 *
 * @module
 */

/**
 * Allocates `seq_id`s and serializes submits for one model.
 *
 * The model's create (or create-via-load) is implicitly seq 0, so the first request after it gets 1.
 * A submit that fails for good still advances the turn: its seq_id is burned (never reaches the server),
 * and the local server treats such a gap as skipped after a bound.
 *
 * @example
 * ```ts
 * const send = async (seqId: number): Promise<void> => console.log("submitting", seqId);
 * const seq = new SeqGate();
 * const a = seq.next(); // 1
 * const b = seq.next(); // 2
 * // b's submit waits for a's, even if started first:
 * const pb = seq.inTurn(b, () => send(b));
 * const pa = seq.inTurn(a, () => send(a));
 * ```
 */
export class SeqGate {
  #nextSeq: number;
  #turn: number;
  readonly #waiters = new Map<number, () => void>();

  /** Starts numbering at `first` (default 1: the create is seq 0). */
  constructor(first = 1) {
    this.#nextSeq = first;
    this.#turn = first;
  }

  /** Takes the next seq_id. Synchronous: call order equals seq order. */
  next(): number {
    return this.#nextSeq++;
  }

  /** The seq_id the next call to {@link next} will return. */
  get peek(): number {
    return this.#nextSeq;
  }

  /**
   * Runs `submit` once every lower seq_id's submit has finished (successfully or not), then advances the
   * turn, whatever `submit` did. Results of `submit` pass through unchanged.
   */
  async inTurn<T>(seq: number, submit: () => Promise<T>): Promise<T> {
    if (seq !== this.#turn) {
      await new Promise<void>((resolve) => this.#waiters.set(seq, resolve));
    }
    try {
      return await submit();
    } finally {
      this.#advance();
    }
  }

  #advance(): void {
    this.#turn++;
    const wake = this.#waiters.get(this.#turn);
    if (wake !== undefined) {
      this.#waiters.delete(this.#turn);
      wake();
    }
  }
}
