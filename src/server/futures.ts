/**
 * Futures of the local server: every training POST gets a request id at once; its result is stored here
 * when the operation finishes and handed out by `retrieve_future`, which long-polls.
 *
 * Bounds (documented defaults, all options of `startLocalServer`):
 * - a pending poll is held for at most `longPollMs` (25 s, under the Python SDK's 45 s poll timeout) and
 *   answered the moment the result exists (waiters are woken on completion; nothing sleeps in a loop);
 * - a completed result is kept for `futureRetentionMs` (1 hour) after completion, then polls get
 *   410 `promise expired; resubmit the request`;
 * - at most `maxRetainedFutures` (10 000) completed results are kept; beyond that the oldest completed
 *   ones are dropped (and answer 410). Pending futures are never dropped.
 *
 * Request ids look like `req-<instance>-<n>`; an id issued by this server instance (or an earlier
 * instance, whose futures a restart lost) that is no longer retained answers 410, any other id 404.
 *
 * @module
 */

import { randomHex } from "./util.js";

/** How a future ended. */
export type FutureOutcome =
  | { ok: true; value: Record<string, unknown> }
  | { ok: false; error: string; category: "user" | "server" | "unknown" };

/** A future known to the server. */
export type FutureRecord = {
  requestId: string;
  owner: string;
  modelId: string | undefined;
  /** The request type, e.g. `SaveWeights`. */
  type: string;
  createdAt: number;
  outcome: FutureOutcome | undefined;
  completedAt: number | undefined;
};

/** Result of {@link FutureRegistry.lookup}. */
export type FutureLookup = { kind: "found"; future: FutureRecord } | { kind: "expired" } | { kind: "unknown" };

/** Options of {@link FutureRegistry}. */
export type FutureRegistryOptions = {
  /** How long a completed result is kept (ms). */
  retentionMs: number;
  /** Maximum number of completed results kept. */
  maxRetained: number;
  /** Monotonic time source in ms (defaults to `performance.now`). */
  now?: () => number;
};

/** The futures of one server. */
export class FutureRegistry {
  readonly #instance = randomHex(4);
  #next = 1;
  readonly #futures = new Map<string, FutureRecord>();
  /** Completed futures in completion order (oldest first), for retention and the cap. */
  readonly #completed = new Map<string, number>();
  readonly #waiters = new Map<string, Set<() => void>>();
  readonly #opts: FutureRegistryOptions;
  readonly #now: () => number;
  #sweepTimer: NodeJS.Timeout | undefined;
  #closed = false;

  /** Creates an empty registry. */
  constructor(opts: FutureRegistryOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? (() => performance.now());
    const every = Math.max(10, Math.min(opts.retentionMs, 60_000));
    this.#sweepTimer = setInterval(() => this.#sweep(), every);
    this.#sweepTimer.unref();
  }

  /** Registers a new pending future. */
  create(owner: string, type: string, modelId: string | undefined): FutureRecord {
    const future: FutureRecord = {
      requestId: `req-${this.#instance}-${this.#next++}`,
      owner,
      modelId,
      type,
      createdAt: this.#now(),
      outcome: undefined,
      completedAt: undefined,
    };
    this.#futures.set(future.requestId, future);
    return future;
  }

  /** Stores the outcome and wakes every poll waiting on it. */
  complete(future: FutureRecord, outcome: FutureOutcome): void {
    if (future.outcome !== undefined) return;
    future.outcome = outcome;
    future.completedAt = this.#now();
    if (this.#futures.get(future.requestId) === future) {
      this.#completed.set(future.requestId, future.completedAt);
      while (this.#completed.size > this.#opts.maxRetained) {
        const oldest = this.#completed.keys().next().value as string;
        this.#completed.delete(oldest);
        this.#futures.delete(oldest);
      }
    }
    const waiters = this.#waiters.get(future.requestId);
    this.#waiters.delete(future.requestId);
    if (waiters) for (const wake of waiters) wake();
  }

  /** Finds a future for `owner`; other users' futures are reported as unknown. */
  lookup(requestId: string, owner: string): FutureLookup {
    this.#sweep();
    const future = this.#futures.get(requestId);
    if (future) return future.owner === owner ? { kind: "found", future } : { kind: "unknown" };
    const m = /^req-([0-9a-f]{8})-(\d+)$/.exec(requestId);
    if (m && (m[1] !== this.#instance || Number(m[2]) < this.#next)) return { kind: "expired" };
    return { kind: "unknown" };
  }

  /**
   * Waits until `future` completes, `timeoutMs` passes, `cancel` is aborted or the registry closes.
   * Resolves true if the future is complete.
   */
  wait(future: FutureRecord, timeoutMs: number, cancel?: AbortSignal): Promise<boolean> {
    if (future.outcome !== undefined) return Promise.resolve(true);
    if (this.#closed || timeoutMs <= 0 || cancel?.aborted) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      let set = this.#waiters.get(future.requestId);
      if (!set) {
        set = new Set();
        this.#waiters.set(future.requestId, set);
      }
      const waiters = set;
      const finish = (): void => {
        clearTimeout(timer);
        cancel?.removeEventListener("abort", finish);
        waiters.delete(finish);
        if (waiters.size === 0 && this.#waiters.get(future.requestId) === waiters) this.#waiters.delete(future.requestId);
        resolve(future.outcome !== undefined);
      };
      const timer = setTimeout(finish, timeoutMs);
      cancel?.addEventListener("abort", finish, { once: true });
      waiters.add(finish);
    });
  }

  /** Whether a poll is being held open for `requestId` right now. */
  isAwaited(requestId: string): boolean {
    return (this.#waiters.get(requestId)?.size ?? 0) > 0;
  }

  /** Number of polls currently held open. */
  get waitingPolls(): number {
    let n = 0;
    for (const s of this.#waiters.values()) n += s.size;
    return n;
  }

  /** Number of futures currently retained (pending and completed). */
  get size(): number {
    return this.#futures.size;
  }

  #sweep(): void {
    const cutoff = this.#now() - this.#opts.retentionMs;
    for (const [id, completedAt] of this.#completed) {
      if (completedAt > cutoff) break;
      this.#completed.delete(id);
      this.#futures.delete(id);
    }
  }

  /** Ends every held poll (they answer `try_again`) and stops the sweeper. */
  close(): void {
    this.#closed = true;
    if (this.#sweepTimer) clearInterval(this.#sweepTimer);
    this.#sweepTimer = undefined;
    const all = [...this.#waiters.values()];
    this.#waiters.clear();
    for (const set of all) for (const wake of set) wake();
  }
}
