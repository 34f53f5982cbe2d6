/**
 * `tinker-ts/server`: the tinker-ts local server, a Tinker-compatible HTTP server on loopback that keeps real state on disk
 * and trains a tiny real LoRA model, so code can be developed offline and tests run over real HTTP.
 *
 * It speaks the wire protocol of the Tinker service for every operation in `spec/tinker.openapi.yaml`
 * (forward_backward as protobuf, zstd-compressed or not, and as JSON for older clients; results as protobuf when
 * the poll asks for it), plus the Python SDK's start-up calls, with these documented bounds:
 *
 * | bound | default | option |
 * |---|---|---|
 * | long-poll hold of a pending `retrieve_future` | 25 s | `longPollMs` |
 * | retention of a completed future's result (then 410) | 1 hour | `futureRetentionMs` |
 * | completed futures kept at most (oldest dropped → 410) | 10 000 | `maxRetainedFutures` |
 * | wait for a missing `seq_id` before skipping it | 30 s | `seqGapTimeoutMs` |
 * | recent seq ids remembered per model for deduplication | 4096 | – |
 * | signed archive URL validity | 15 min | `archiveUrlTtlMs` |
 * | minimum checkpoint TTL | 3600 s | `minTtlSeconds` |
 * | request body size | 64 MiB | – |
 * | recorded requests (`server.requests`) | last 1000, bodies up to 1 MiB | – |
 * | live models | unbounded (each is tiny); `unload_model` frees one | – |
 * | `seq_id` of a training op | an int32 ≥ 1, at most 10 000 ahead of the model's next due one (else 400) | – |
 * | JSON nesting of a request body | 64 levels (else 400) | – |
 * | replay of a mutating request with the same `X-Idempotency-Key` | 15 min, ≤ 10 000 answers / 32 MiB | – |
 * | request headers complete / whole request received | 20 s / 300 s (else 408 and close) | `timeouts` |
 * | idle keep-alive connection / silent socket | 5 s / 120 s (at least the long-poll hold + 30 s) | `timeouts` |
 *
 * Extra routes that are not part of the Tinker API:
 *
 * - `GET /local/archives/<run>/<kind>/<name>?expires=&sig=` — signed archive download (no API key;
 *   `Range` supported);
 * - `POST|DELETE /local/admin/faults` — fault injection (see `faults.ts`); only with the server's own
 *   API key (`apiKey`, not `extraApiKeys`: 403), and only when started with `faultInjection: true` or
 *   `faults` (else 404);
 * - `POST /local/admin/synthetic_checkpoint` `{run_id?, name, size_bytes, overwrite?}` (server's own key) — a training
 *   checkpoint whose weights file is `size_bytes` of deterministic pseudo-random data (for benchmarks),
 *   answering `{tinker_path, training_run_id, checkpoint_id, size_bytes}`.
 *
 * @module
 */

import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createHash } from "node:crypto";
import { createOperationHandlers, type ClientConfig, type QueueState } from "./api.js";
import { ArchiveService, loadUrlSigningKey } from "./archive.js";
import { ServerAuth } from "./auth.js";
import { AccountLedger } from "./account.js";
import { FaultInjector, type FaultRule } from "./faults.js";
import { FutureRegistry } from "./futures.js";
import { SEQUENCED_OPERATIONS } from "./guards.js";
import { HttpApp, type RecordedRequest } from "./http.js";
import { SamplingHost } from "./sampling.js";
import { IdempotencyCache } from "./idempotency.js";
import { Store } from "./store.js";
import { TrainingHost, type OperationEvent, type SupportedModel } from "./training.js";
import { isRecord, randomHex } from "./util.js";

export type { FaultRule } from "./faults.js";
export type { RecordedRequest } from "./http.js";
export type { ClientConfig, QueueState } from "./api.js";
export { DEFAULT_CLIENT_CONFIG } from "./api.js";
export type { OperationEvent, SupportedModel } from "./training.js";

/** Base models the local server accepts by default (real Tinker model names). */
export const DEFAULT_SUPPORTED_MODELS: readonly SupportedModel[] = Object.freeze([
  { model_name: "Qwen/Qwen3-8B", max_context_length: 32768 },
  { model_name: "Qwen/Qwen3-8B-Base", max_context_length: 32768 },
  { model_name: "Qwen/Qwen3-30B-A3B", max_context_length: 32768 },
  { model_name: "Qwen/Qwen3-4B-Instruct-2507", max_context_length: 32768 },
  { model_name: "meta-llama/Llama-3.2-1B", max_context_length: 131072 },
  { model_name: "meta-llama/Llama-3.2-3B", max_context_length: 131072 },
  { model_name: "meta-llama/Llama-3.1-8B", max_context_length: 131072 },
  { model_name: "openai/gpt-oss-20b", max_context_length: 131072 },
]);

/** Options of {@link startLocalServer}. Every field is optional. */
export type LocalServerOptions = {
  /** TCP port; 0 (the default) picks a free one. */
  port?: number;
  /** Interface to bind (default `127.0.0.1`). */
  host?: string;
  /**
   * Where state lives. Default: a new temporary directory, removed again by `close()`. With an explicit
   * directory the state survives restarts.
   */
  dataDir?: string;
  /**
   * The API key of the primary user. Default: the key stored in `<dataDir>/local-api-key` if present,
   * else a new random `tml-local-<hex>` (stored there, so a restart on the same directory keeps it).
   */
  apiKey?: string;
  /** More valid API keys; each key is a separate user. */
  extraApiKeys?: string[];
  /** Delay before each training operation executes, simulating a busy service (ms, default 0). */
  futureDelayMs?: number;
  /** The `queue_state` that pending futures report (default `"active"`). */
  queueState?: QueueState;
  /** How long a pending `retrieve_future` is held open (ms, default 25 000). */
  longPollMs?: number;
  /** How long a completed future's result is kept (ms, default 3 600 000); afterwards polls get 410. */
  futureRetentionMs?: number;
  /** How many completed futures are kept at most (default 10 000); the oldest are dropped (410). */
  maxRetainedFutures?: number;
  /** How long a missing seq id is waited for before it is skipped (ms, default 30 000). */
  seqGapTimeoutMs?: number;
  /** Validity of signed archive URLs (ms, default 900 000 = 15 min). */
  archiveUrlTtlMs?: number;
  /** Whether the archive endpoint answers 302 + `Location` (default) or 200 `{url, expires}`. */
  archiveResponse?: "redirect" | "json";
  /** For this long after a checkpoint's archive is first requested, the archive endpoint answers 503 (ms, default 0). */
  archiveGenerationDelayMs?: number;
  /** Smallest accepted checkpoint TTL in seconds (default 3600, like the Tinker service). */
  minTtlSeconds?: number;
  /**
   * Wall clock in epoch ms (default `Date.now`), used for checkpoint times, TTL expiry and signed-URL
   * expiry. Tests can pass a clock they advance to expire checkpoints and URLs without waiting.
   */
  clock?: () => number;
  /** Base models accepted by `create_model` and listed by `get_server_capabilities`. */
  supportedModels?: readonly SupportedModel[];
  /**
   * Overrides of what `/api/v1/client/config` answers (see `DEFAULT_CLIENT_CONFIG`: chunk limits,
   * `parallel_fwdbwd_chunks`, `proto_compress_fwdbwd`, `create_model_via_load_weights`, ...), so tests can
   * exercise every mode the service has. `use_pyqwest_transport` stays false unless overridden.
   */
  clientConfig?: Partial<ClientConfig>;
  /**
   * Lifetime of the JWTs `POST /api/v1/auth/token` issues, in seconds (default 3600; fractions allowed, so tests
   * can see tokens expire during a run). With `clientConfig: { pjwt_auth_enabled: true }` the server runs in JWT
   * mode: API keys are accepted only by `/api/v1/client/config` and `/api/v1/auth/token`.
   */
  jwtLifetimeSeconds?: number;
  /** Fault-injection rules active from the start (see `FaultRule`); giving them enables `faultInjection`. */
  faults?: FaultRule[];
  /**
   * Enables the HTTP admin route `/local/admin/faults` (for the server's own API key only). Default:
   * false unless `faults` is given. `setFaults()` works either way.
   */
  faultInjection?: boolean;
  /**
   * Connection timeouts (ms). `headersMs`: a request's headers must arrive within this (default 20 000);
   * `requestMs`: the whole request (default 300 000); `keepAliveMs`: an idle keep-alive connection is
   * closed after this (default 5 000); `idleSocketMs`: a socket with no traffic at all is closed after
   * this (default 120 000, never less than the long-poll hold + 30 s).
   */
  timeouts?: { headersMs?: number; requestMs?: number; keepAliveMs?: number; idleSocketMs?: number };
  /** Called for every request once its body is read. */
  onRequest?: (req: RecordedRequest) => void;
  /** Called when a training operation finishes executing (times from `performance.now()`); for benchmarks. */
  onOperation?: (event: OperationEvent) => void;
  /** Log sink (default: silent). API keys are never logged. */
  log?: (line: string) => void;
};

/** A running local server. */
export type LocalServer = {
  /** `http://127.0.0.1:<port>` (no trailing slash). */
  baseUrl: string;
  /** The primary user's API key. */
  apiKey: string;
  /** The absolute data directory. */
  dataDir: string;
  /** The bound port. */
  port: number;
  /** Stops accepting, ends long polls, closes keep-alive sockets; resolves once the server is closed. */
  close(): Promise<void>;
  /** The same as {@link LocalServer.close}, for `await using server = await startLocalServer()`. */
  [Symbol.asyncDispose](): Promise<void>;
  /** Replaces the active fault-injection rules. */
  setFaults(rules: FaultRule[]): void;
  /** Removes every fault-injection rule. */
  clearFaults(): void;
  /** How many injected faults fired so far. */
  readonly faultsInjected: number;
  /** Changes the `queue_state` pending futures report. */
  setQueueState(state: QueueState): void;
  /** The most recent requests received (oldest first, at most 1000). */
  readonly requests: RecordedRequest[];
};

/** The user id (owner) of an API key: stable across restarts, reveals nothing about the key. */
export function ownerOfKey(key: string): string {
  return `user-${createHash("sha256").update(key).digest("hex").slice(0, 16)}`;
}

async function resolveApiKey(dataDir: string, explicit: string | undefined): Promise<string> {
  if (explicit !== undefined) {
    if (explicit === "") throw new Error("apiKey must not be empty");
    return explicit;
  }
  const file = join(dataDir, "local-api-key");
  try {
    const stored = (await readFile(file, "utf8")).trim();
    if (stored !== "") return stored;
  } catch {
    // none stored yet
  }
  const key = `tml-local-${randomHex(16)}`;
  await writeFile(file, `${key}\n`, { mode: 0o600 });
  return key;
}

/**
 * Starts a local Tinker-compatible server.
 *
 * @throws {Error} if the port cannot be bound or the data directory cannot be used.
 * @example
 * ```ts
 * import { startLocalServer } from "tinker-ts/server";
 *
 * await using server = await startLocalServer({ futureDelayMs: 10 }); // closed when the scope ends
 * const res = await fetch(`${server.baseUrl}/api/v1/create_session`, {
 *   method: "POST",
 *   headers: { "content-type": "application/json", "x-api-key": server.apiKey },
 *   body: JSON.stringify({ tags: [], user_metadata: {}, sdk_version: "0.1.0" }),
 * });
 * console.log(await res.json()); // { session_id: "sess-…", type: "create_session" }
 * ```
 */
export async function startLocalServer(options: LocalServerOptions = {}): Promise<LocalServer> {
  const log = options.log ?? (() => undefined);
  const clock = options.clock ?? Date.now;
  const ownsDataDir = options.dataDir === undefined;
  const dataDir = resolve(options.dataDir ?? (await mkdtemp(join(tmpdir(), "tinker-local-"))));
  const host = options.host ?? "127.0.0.1";

  let archive: ArchiveService | undefined;
  const store = await Store.open(dataDir, { clock, log, onCheckpointRemoved: (rec) => archive?.invalidate(rec) });
  const apiKey = await resolveApiKey(dataDir, options.apiKey);
  const keys = new Map<string, string>();
  for (const key of [apiKey, ...(options.extraApiKeys ?? [])]) if (key !== "") keys.set(key, ownerOfKey(key));

  const urlSigningKey = await loadUrlSigningKey(dataDir);
  archive = new ArchiveService(store, {
    urlTtlMs: options.archiveUrlTtlMs ?? 15 * 60_000,
    generationDelayMs: options.archiveGenerationDelayMs ?? 0,
    clock,
    secret: urlSigningKey,
  });
  const auth = new ServerAuth({
    keys,
    jwtMode: options.clientConfig?.pjwt_auth_enabled === true,
    secret: urlSigningKey,
    lifetimeSeconds: options.jwtLifetimeSeconds ?? 3600,
    clock,
  });
  const futures = new FutureRegistry({
    retentionMs: options.futureRetentionMs ?? 3_600_000,
    maxRetained: options.maxRetainedFutures ?? 10_000,
  });
  const minTtlSeconds = options.minTtlSeconds ?? 3600;
  const supportedModels = options.supportedModels ?? DEFAULT_SUPPORTED_MODELS;
  const sampling = await SamplingHost.open({ store, futures, dataDir, clock, log, supportedModels, onOperation: options.onOperation });
  const training = new TrainingHost({
    store,
    futures,
    clock,
    log,
    futureDelayMs: options.futureDelayMs ?? 0,
    seqGapTimeoutMs: options.seqGapTimeoutMs ?? 30_000,
    minTtlSeconds,
    supportedModels,
    onOperation: options.onOperation,
    tokenOwner: (token) => auth.tokenOwner(token),
    onSamplerSaved: (info) => sampling.registerSaved(info),
  });
  let queueState: QueueState = options.queueState ?? "active";
  const longPollMs = options.longPollMs ?? 25_000;
  const handlers = createOperationHandlers({
    store,
    futures,
    training,
    sampling,
    archive,
    clock,
    longPollMs,
    queueState: () => queueState,
    archiveResponse: options.archiveResponse ?? "redirect",
    minTtlSeconds,
    supportedModels,
    clientConfig: options.clientConfig,
    auth,
    account: new AccountLedger(store, clock),
  });
  const faults = new FaultInjector();
  if (options.faults) faults.set(options.faults);

  let baseUrl = "";
  const app = new HttpApp({
    handlers,
    keys,
    auth,
    faults,
    archive,
    store,
    baseUrl: () => baseUrl,
    log,
    onRequest: options.onRequest,
    idempotency: new IdempotencyCache({ clock }),
    adminOwner: ownerOfKey(apiKey),
    faultAdmin: options.faultInjection ?? options.faults !== undefined,
    onInvalidRequest: (operationId, owner, body, error) => {
      if (!SEQUENCED_OPERATIONS.has(operationId) || !isRecord(body)) return;
      const { model_id: modelId, seq_id: seqId } = body;
      if (typeof modelId === "string" && typeof seqId === "number") training.rejectSeq(owner, modelId, seqId, error);
    },
  });

  const t = options.timeouts ?? {};
  const headersTimeout = t.headersMs ?? 20_000;
  const requestTimeout = Math.max(t.requestMs ?? 300_000, headersTimeout + 1);
  const server: Server = createServer(
    { headersTimeout, requestTimeout, connectionsCheckingInterval: Math.max(50, Math.min(5000, Math.floor(headersTimeout / 4))) },
    (req, res) => app.handle(req, res),
  );
  server.keepAliveTimeout = t.keepAliveMs ?? 5000;
  // A socket without any traffic (never sent a request, or a stalled body/answer) is destroyed.
  server.timeout = t.idleSocketMs ?? Math.max(120_000, longPollMs + 30_000);
  const sockets = new Set<Socket>();
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  server.on("clientError", (_err, socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
    else socket.destroy();
  });

  await new Promise<void>((resolveListen, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, () => {
      server.off("error", reject);
      resolveListen();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
  baseUrl = `http://${urlHost}:${port}`;
  log(`local server listening on ${baseUrl} (data dir ${dataDir})`);

  const sweeper = setInterval(() => {
    store.sweepExpired().catch((err: unknown) => log(`store: sweep failed: ${(err as Error).message}`));
  }, 60_000);
  sweeper.unref();

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      app.closing = true;
      clearInterval(sweeper);
      const closed = new Promise<void>((r) => server.close(() => r()));
      futures.close();
      server.closeIdleConnections();
      await training.close();
      await sampling.close();
      await store.close();
      // Give answers in flight (e.g. the long polls just woken) a moment, then cut the rest.
      const deadline = Date.now() + 500;
      while (sockets.size > 0 && Date.now() < deadline) {
        server.closeIdleConnections();
        await new Promise((r) => setTimeout(r, 10));
      }
      server.closeAllConnections();
      for (const s of sockets) s.destroy();
      await closed;
      if (ownsDataDir) await rm(dataDir, { recursive: true, force: true });
      log("local server closed");
    })();
    return closing;
  };

  return {
    baseUrl,
    apiKey,
    dataDir,
    port,
    close,
    [Symbol.asyncDispose]: close,
    setFaults: (rules) => faults.set(rules),
    clearFaults: () => faults.clear(),
    get faultsInjected() {
      return faults.fired;
    },
    setQueueState: (state) => {
      queueState = state;
    },
    get requests() {
      return app.requests;
    },
  };
}
