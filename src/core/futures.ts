/**
 * Futures: the result of a training operation, fetched by polling `retrieve_future` (the poller is
 * `internal/poll.ts`). {@link APIFuture} settles once, with the result or an error.
 *
 * @module
 */
import { APITimeoutError, APIUserAbortError } from "./errors.js";
/** Queue states the service reports while a request waits. `unknown` stands for any other string. */
export type QueueState = "active" | "paused_capacity" | "paused_rate_limit" | "unknown";

/** A change of a pending request's queue state, given to `onQueueStateChange`. */
export interface QueueStateChange {
  /** The pending request. */
  requestId: string;
  /** The operation, e.g. `"save_weights"`. */
  operation: string;
  /** The new state. */
  queueState: QueueState;
  /** The server's reason, or a default text for paused states. */
  reason: string | undefined;
}

/** Options of {@link APIFuture.result}. */
export interface FutureResultOptions {
  /** Stop waiting after this many ms ({@link APITimeoutError}); the server may still complete the work. */
  timeoutMs?: number;
  /** Stop waiting when aborted ({@link APIUserAbortError}); the server may still complete the work. */
  signal?: AbortSignal;
}

/**
 * The result of a training operation that the server completes later.
 *
 * `APIFuture` is `PromiseLike`: `await future` gives the result. Its `seqId` is fixed when the method is
 * called, so the operations a checkpoint captures are exactly those with a lower `seqId` on the same client.
 * The result is fetched once and cached; awaiting again returns the same value (or the same error).
 *
 * @example
 * ```ts
 * const step = training.optimStep({ learning_rate: 1e-4 });
 * const save = training.saveState("after-step"); // save.seqId === step.seqId + 1
 * console.log(await step, (await save).path);
 * const info = await save.result({ timeoutMs: 60_000 });
 * ```
 */
export class APIFuture<T> implements PromiseLike<T> {
  /** The request's seq_id on its training client (0 for operations outside the training order, e.g. create). */
  readonly seqId: number;
  /** The server's request id, once the submit has been accepted. Rejects if the submit failed. */
  readonly requestId: Promise<string>;
  /** The operation, e.g. `"save_weights"`. */
  readonly operation: string;
  readonly #settled: Promise<T>;
  readonly #wait: FutureResultOptions;

  /**
   * @internal Built by the clients; users get futures from training methods. `wait` holds the options `await`
   * uses (the method's `signal`).
   */
  constructor(init: { seqId: number; operation: string; requestId: Promise<string>; settled: Promise<T>; wait?: FutureResultOptions }) {
    this.seqId = init.seqId;
    this.operation = init.operation;
    this.requestId = init.requestId;
    this.#settled = init.settled;
    this.#wait = init.wait ?? {};
    // Errors surface through result()/then(); never as unhandled rejections.
    this.requestId.catch(() => undefined);
    this.#settled.catch(() => undefined);
  }

  /**
   * Waits for the result.
   *
   * @throws {@link APITimeoutError} after `timeoutMs`, {@link APIUserAbortError} when `signal` aborts (in both
   *   cases the server may still complete the work), {@link RequestFailedError} when the server reports a
   *   failure, {@link PromiseExpiredError} when the promise expired (resubmit), or the submit's error.
   * @example
   * ```ts
   * const out = await training.forwardBackward(batch, "cross_entropy").result({ timeoutMs: 30_000 });
   * ```
   */
  result(options: FutureResultOptions = {}): Promise<T> {
    const { timeoutMs, signal } = options;
    if (timeoutMs === undefined && signal === undefined) return this.#settled;
    return new Promise<T>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const cleanup = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      const onAbort = (): void => {
        cleanup();
        reject(
          new APIUserAbortError({
            cause: signal?.reason,
            message: `Stopped waiting for ${this.operation} (seq_id ${this.seqId}): aborted by the caller. The server may still complete the work.`,
          }),
        );
      };
      if (signal?.aborted === true) {
        onAbort();
        return;
      }
      signal?.addEventListener("abort", onAbort, { once: true });
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          cleanup();
          reject(
            new APITimeoutError({
              timeoutMs,
              message: `Stopped waiting for ${this.operation} (seq_id ${this.seqId}) after ${timeoutMs} ms. The server may still complete the work; await the future again or check the checkpoint listing before resubmitting.`,
            }),
          );
        }, timeoutMs);
      }
      this.#settled.then(
        (value) => {
          cleanup();
          resolve(value);
        },
        (err: unknown) => {
          cleanup();
          reject(err);
        },
      );
    });
  }

  /** `PromiseLike`: `await future` waits with no time limit (aborted by the `signal` given to the method). */
  // biome-ignore lint/suspicious/noThenProperty: APIFuture is PromiseLike by design, so `await future` works
  then<R1 = T, R2 = never>(
    onfulfilled?: ((value: T) => R1 | PromiseLike<R1>) | null,
    onrejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2> {
    return this.result(this.#wait).then(onfulfilled, onrejected);
  }
}
