/**
 * Per-model ordering of training operations by `seq_id`.
 *
 * - The create (`create_model`) is seq 0; the first training op is seq 1.
 * - Ops execute strictly in seq order, one at a time; an op that arrives early waits for its predecessors.
 * - A seq id that does not arrive within `gapTimeoutMs` after it became the next one due, while a later op
 *   waits, is skipped (a client burned it on a failed submit), so the model never stalls. Default 30 s
 *   (`seqGapTimeoutMs` of `startLocalServer`).
 * - Barriers (used by `unload_model`, which has no seq id) run as soon as no seq task is runnable (none
 *   running, and the next due seq id has not arrived); ops with later seq ids stay queued behind them.
 *
 * Deduplication of repeated seq ids is the caller's job ({@link Sequencer.isPast} tells whether a seq
 * id can still be scheduled).
 *
 * @module
 */

/** A unit of work on a model. */
export type SequencedTask = () => Promise<void>;

/** Options of {@link Sequencer}. */
export type SequencerOptions = {
  /** How long to wait for a missing seq id while later ones are queued (ms). */
  gapTimeoutMs: number;
  /** Called when seq ids are skipped (first and last skipped, inclusive). */
  onSkip?: (from: number, to: number) => void;
  /** Called when a task throws (tasks should handle their own errors). */
  onError?: (err: unknown) => void;
};

/** Executes one model's tasks in seq-id order. */
export class Sequencer {
  #next: number;
  readonly #pending = new Map<number, SequencedTask>();
  readonly #barriers: SequencedTask[] = [];
  #running = false;
  #gapTimer: NodeJS.Timeout | undefined;
  #closed = false;
  #idle: Promise<void> = Promise.resolve();
  #resolveIdle: (() => void) | undefined;
  readonly #opts: SequencerOptions;

  /** Creates a sequencer whose first due seq id is `first` (0 when the create is queued as seq 0). */
  constructor(first: number, opts: SequencerOptions) {
    this.#next = first;
    this.#opts = opts;
  }

  /** The next seq id due to execute. */
  get next(): number {
    return this.#next;
  }

  /** Whether `seq` is below the next due seq id (it executed or was skipped). */
  isPast(seq: number): boolean {
    return seq < this.#next;
  }

  /** Whether `seq` is queued and waiting. */
  isQueued(seq: number): boolean {
    return this.#pending.has(seq);
  }

  /** Whether any task is queued or running. */
  get busy(): boolean {
    return this.#running || this.#pending.size > 0 || this.#barriers.length > 0;
  }

  /** Queues `task` as seq id `seq` (which must not be past nor already queued). */
  submit(seq: number, task: SequencedTask): void {
    if (seq < this.#next || this.#pending.has(seq)) throw new Error(`seq_id ${seq} cannot be scheduled`);
    this.#pending.set(seq, task);
    this.#pump();
  }

  /** Queues a barrier task that runs as soon as no seq task is runnable. */
  barrier(task: SequencedTask): void {
    this.#barriers.push(task);
    this.#pump();
  }

  /** Resolves once nothing is running (queued tasks may remain). */
  whenNotRunning(): Promise<void> {
    return this.#idle;
  }

  /** Stops executing further tasks (the running one finishes). */
  close(): void {
    this.#closed = true;
    this.#clearGapTimer();
    this.#pending.clear();
    this.#barriers.length = 0;
  }

  #clearGapTimer(): void {
    if (this.#gapTimer !== undefined) clearTimeout(this.#gapTimer);
    this.#gapTimer = undefined;
  }

  #pump(): void {
    if (this.#running || this.#closed) return;
    let task = this.#pending.get(this.#next);
    let seq: number | undefined = this.#next;
    if (task !== undefined) {
      this.#pending.delete(this.#next);
      this.#clearGapTimer();
    } else if (this.#barriers.length > 0) {
      // Nothing is runnable (empty, or a gap): a barrier goes first.
      task = this.#barriers.shift();
      seq = undefined;
    } else if (this.#pending.size > 0) {
      // A gap: wait for the missing seq id, but not forever.
      if (this.#gapTimer === undefined) {
        const waitingFor = this.#next;
        this.#gapTimer = setTimeout(() => {
          this.#gapTimer = undefined;
          if (this.#closed || this.#next !== waitingFor || this.#pending.has(waitingFor) || this.#pending.size === 0) {
            this.#pump();
            return;
          }
          const resume = Math.min(...this.#pending.keys());
          this.#opts.onSkip?.(waitingFor, resume - 1);
          this.#next = resume;
          this.#pump();
        }, this.#opts.gapTimeoutMs);
      }
      return;
    }
    if (task === undefined) return;
    this.#running = true;
    this.#idle = new Promise((resolve) => {
      this.#resolveIdle = resolve;
    });
    const run = task;
    void (async () => {
      try {
        await run();
      } catch (err) {
        this.#opts.onError?.(err);
      } finally {
        if (seq !== undefined) this.#next = seq + 1;
        this.#running = false;
        this.#resolveIdle?.();
        this.#pump();
      }
    })();
  }
}
