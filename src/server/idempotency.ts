/**
 * `X-Idempotency-Key` for the local server's mutating requests.
 *
 * A POST, PUT, PATCH or DELETE under `/api/v1/` that carries `X-Idempotency-Key` is remembered under
 * (owner, method, path, key) together with a SHA-256 of its body. A repeat within the window:
 *
 * - after the first answer was sent: gets that answer again (status, headers, body) with
 *   `Idempotent-Replayed: true`, and nothing executes again;
 * - while the first is still executing: waits for it, then gets its answer;
 * - with a different body: 422 (a key names one request).
 *
 * Only final answers are remembered: 2xx, 3xx and 4xx other than 401, 408 and 429. Transient answers
 * (5xx, 408, 429, injected faults, a request whose handler failed) are forgotten, so a retry executes.
 * An answer whose connection was cut after the work was done is remembered (that is the point).
 *
 * Read-only POSTs are not remembered: `retrieve_future` (a poll must see progress), `get_info`,
 * `weights_info`, the client config calls, heartbeats, telemetry and `auth/token`. Training ops keep
 * their own `(model_id, seq_id)` dedup as well.
 *
 * Bounds: the window is {@link IDEMPOTENCY_WINDOW_MS} (15 min) from the first answer, longer than the
 * SDK's 300 s retry budget; at most {@link IDEMPOTENCY_MAX_ENTRIES} entries and
 * {@link IDEMPOTENCY_MAX_BYTES} bytes of remembered bodies are kept (the oldest are dropped first); a
 * body over {@link IDEMPOTENCY_MAX_BODY_BYTES} is not remembered; keys are at most 255 characters.
 *
 * @module
 */

import { createHash } from "node:crypto";

/** How long a remembered answer is replayed (ms): 15 minutes. */
export const IDEMPOTENCY_WINDOW_MS = 15 * 60_000;

/** Most remembered answers. */
export const IDEMPOTENCY_MAX_ENTRIES = 10_000;

/** Most bytes of remembered answer bodies (plus keys). */
export const IDEMPOTENCY_MAX_BYTES = 32 * 1024 * 1024;

/** Largest answer body that is remembered. */
export const IDEMPOTENCY_MAX_BODY_BYTES = 1024 * 1024;

/** Longest accepted `X-Idempotency-Key`. */
export const IDEMPOTENCY_MAX_KEY_LENGTH = 255;

/** POST paths that only read, so their answers are never replayed. */
export const NOT_REMEMBERED_PATHS: ReadonlySet<string> = new Set([
  "/api/v1/retrieve_future",
  "/api/v1/get_info",
  "/api/v1/weights_info",
  "/api/v1/client/config",
  "/api/v1/client/dynamic_config",
  "/api/v1/session_heartbeat",
  "/api/v1/telemetry",
  "/api/v1/auth/token",
]);

/** An answer as sent: status, headers (without content-type/length), the JSON body (or undefined). */
export type StoredAnswer = { status: number; headers: Record<string, string>; body: unknown; bytes: number };

/** What to do with a request that carries a key. */
export type IdempotencyDecision =
  | { kind: "replay"; answer: StoredAnswer }
  | { kind: "mismatch" }
  | { kind: "run"; finish: (answer: StoredAnswer | undefined) => void };

type Entry = {
  fingerprint: string;
  answer?: StoredAnswer;
  pending?: Promise<void>;
  expiresAt: number;
  bytes: number;
};

/** Whether `method` + `path` is a request whose answer is remembered under its key. */
export function isRemembered(method: string, path: string): boolean {
  return (
    (method === "POST" || method === "PUT" || method === "PATCH" || method === "DELETE") &&
    path.startsWith("/api/v1/") &&
    !NOT_REMEMBERED_PATHS.has(path)
  );
}

/** Whether an answer with `status` is final (remembered) rather than transient. */
export function isFinalStatus(status: number): boolean {
  return status < 500 && status !== 401 && status !== 408 && status !== 429;
}

/** The remembered answers of one server. */
export class IdempotencyCache {
  readonly #entries = new Map<string, Entry>();
  readonly #clock: () => number;
  readonly #windowMs: number;
  #bytes = 0;

  /** Creates an empty cache; `clock` is epoch ms (the server's clock, so tests can advance it). */
  constructor(opts: { clock: () => number; windowMs?: number }) {
    this.#clock = opts.clock;
    this.#windowMs = opts.windowMs ?? IDEMPOTENCY_WINDOW_MS;
  }

  /** Number of remembered or pending entries. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Decides about a request: `scope` is owner, method, path and key; `body` the raw request body. For
   * `run`, the caller must call `finish` exactly once with the answer it sent (or undefined).
   */
  async begin(scope: string, body: Uint8Array): Promise<IdempotencyDecision> {
    const fingerprint = createHash("sha256").update(body).digest("hex");
    for (;;) {
      this.#sweep();
      const found = this.#entries.get(scope);
      if (found !== undefined && found.answer === undefined && found.pending === undefined) this.#drop(scope, found);
      else if (found !== undefined) {
        if (found.fingerprint !== fingerprint) return { kind: "mismatch" };
        if (found.answer !== undefined) return { kind: "replay", answer: found.answer };
        await found.pending;
        continue;
      }
      let release!: () => void;
      const entry: Entry = { fingerprint, pending: new Promise((r) => (release = r)), expiresAt: Infinity, bytes: scope.length };
      this.#entries.set(scope, entry);
      this.#bytes += entry.bytes;
      let done = false;
      return {
        kind: "run",
        finish: (answer) => {
          if (done) return;
          done = true;
          entry.pending = undefined;
          release();
          if (this.#entries.get(scope) !== entry) return;
          if (answer === undefined || !isFinalStatus(answer.status) || answer.bytes > IDEMPOTENCY_MAX_BODY_BYTES) {
            this.#drop(scope, entry);
            return;
          }
          // Re-insert so that insertion order is expiry order (the sweep stops at the first live entry).
          this.#entries.delete(scope);
          entry.answer = answer;
          entry.expiresAt = this.#clock() + this.#windowMs;
          this.#bytes += answer.bytes;
          entry.bytes += answer.bytes;
          this.#entries.set(scope, entry);
          this.#evict();
        },
      };
    }
  }

  #drop(scope: string, entry: Entry): void {
    if (this.#entries.get(scope) === entry) this.#entries.delete(scope);
    this.#bytes -= entry.bytes;
  }

  #sweep(): void {
    const now = this.#clock();
    for (const [scope, entry] of this.#entries) {
      if (entry.answer === undefined) continue;
      if (entry.expiresAt > now) break;
      this.#drop(scope, entry);
    }
  }

  #evict(): void {
    for (const [scope, entry] of this.#entries) {
      if (this.#entries.size <= IDEMPOTENCY_MAX_ENTRIES && this.#bytes <= IDEMPOTENCY_MAX_BYTES) return;
      if (entry.answer !== undefined) this.#drop(scope, entry);
    }
  }
}
