/**
 * An abortable sleep, shared by the retry policy and the future poller.
 *
 * @module
 */

/** A sleep function: resolves after `ms`, rejects early when `signal` aborts. Injectable in tests. */
export type SleepFn = (ms: number, signal?: AbortSignal) => Promise<void>;

/**
 * Resolves after `ms` milliseconds; rejects with the signal's reason as soon as `signal` aborts
 * (immediately if it already has). The timer is cleared on abort, so nothing keeps the process alive.
 *
 * @throws the `signal.reason` (a `DOMException` named `AbortError` when none was given) when aborted.
 * @example
 * ```ts
 * const ac = new AbortController();
 * setTimeout(() => ac.abort(), 10);
 * await abortableSleep(60_000, ac.signal).catch(() => console.log("woke up early"));
 * ```
 */
export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(abortReason(signal));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortReason(signal));
    };
    const timer = setTimeout(
      () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      },
      Math.max(0, ms),
    );
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function abortReason(signal: AbortSignal | undefined): unknown {
  return signal?.reason ?? new DOMException("The operation was aborted.", "AbortError");
}
