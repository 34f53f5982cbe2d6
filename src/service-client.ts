/**
 * ServiceClient: the entry point. Holds the connection settings, the session and its heartbeats, and creates
 * training and REST clients.
 *
 * @module
 */
import { randomUUID } from "node:crypto";
import type { z } from "zod";
import type { components } from "./core/wire.js";
import { InvalidArgumentError, NotFoundError, TinkerError } from "./core/errors.js";
import { cloudflareAccessHeaders, resolveCredentials } from "./internal/config.js";
import type { ClientAuth } from "./internal/auth.js";
import { createAuthTransport } from "./internal/auth-transport.js";
import type { QueueStateChange } from "./core/futures.js";
import type { PollAnswer, PollerContext, PollHeaders } from "./internal/poll.js";
import { submitFuture } from "./internal/submit.js";
import {
  CreateModelResponseSchema,
  CreateSamplingSessionResponseSchema,
  CreateSessionResponseSchema,
  GetServerCapabilitiesResponseSchema,
  SessionHeartbeatResponseSchema,
  WeightsInfoResponseSchema,
} from "./internal/schemas.js";
import { abortableSleep, type SleepFn } from "./internal/sleep.js";
import { parseTinkerPath } from "./core/tinker-path.js";
import { SDK_VERSION, type Transport } from "./internal/transport.js";
import type { RequestOptions } from "./core/options.js";
import { requestOptionsOf } from "./internal/request-options.js";
import type { Logger, LoggingOptions, LogLevel } from "./core/logging.js";
import { Log } from "./internal/log.js";
import type { RetryEvent } from "./internal/retry.js";
import { ByteBudget, ClientConfigSchema, DEFAULT_CLIENT_CONFIG, type ClientConfig } from "./internal/client-config.js";
import { LoadWeightsResponseSchema } from "./internal/schemas.js";
import { RestClient } from "./rest-client.js";
import { TrainingClient } from "./training-client.js";
import { checkConcurrency, SamplingClient, type CreateSamplingClientOptions, type SamplingContext } from "./sampling-client.js";

/** Result of {@link ServiceClient.getServerCapabilities}. */
export type GetServerCapabilitiesResponse = components["schemas"]["GetServerCapabilitiesResponse"];

export type { Logger } from "./core/logging.js";

/** Options of {@link ServiceClient} (with the {@link LoggingOptions}: `logger`, `logLevel`, `onRequest`, `onResponse`). */
export interface ServiceClientOptions extends LoggingOptions {
  /** Server base URL. Default: `TINKER_BASE_URL`. */
  baseUrl?: string;
  /** API key (`tml-...` or a JWT), sent as `X-API-Key`. Default: `TINKER_API_KEY`. Never printed. */
  apiKey?: string;
  /**
   * How long connection errors, 408, 429 and ≥500 are retried, in ms (default 300 000, as the service expects).
   * 409 and other 4xx are never retried; a 402 pauses instead. Also settable per call.
   */
  retryBudgetMs?: number;
  /** Caps the retries inside the budget (default: no cap). `0` fails fast. */
  maxRetries?: number;
  /** Per-attempt HTTP time limit in ms (default 60 000). */
  timeoutMs?: number;
  /** The fetch to use (default: node:http with keep-alive; pass `globalThis.fetch` to use undici). */
  fetch?: typeof globalThis.fetch;
  /**
   * HTTP proxy for every request and download, e.g. `"http://user:pass@proxy.corp:3128"` (credentials go to the
   * proxy only, and are redacted everywhere); `false`: never use a proxy. Default: `HTTPS_PROXY` / `HTTP_PROXY`
   * (lower-case names win), except for hosts in `NO_PROXY` (which also applies to this option) and loopback
   * (`localhost`, 127.0.0.0/8, `::1`: direct unless this option is given). See "Proxies" in the README. With a custom `fetch`, REST calls are that fetch's business and only downloads use this.
   */
  proxy?: string | false;
  /**
   * Headers sent on every request to the service (never to a download host; cannot replace `X-API-Key`).
   * `CF-Access-Client-Id` / `CF-Access-Client-Secret` are added from `CLOUDFLARE_ACCESS_CLIENT_ID` /
   * `CLOUDFLARE_ACCESS_CLIENT_SECRET` when set; these headers win over them.
   */
  defaultHeaders?: Record<string, string>;
  /** Metadata attached to the session. */
  userMetadata?: Record<string, unknown>;
  /** Session tags. Default: `TINKER_TAGS` (comma-separated). */
  tags?: string[];
  /** Project id of the session. Default: `TINKER_PROJECT_ID`. */
  projectId?: string;
  /** Heartbeat interval in ms (default 10 000, as the service expects). */
  heartbeatIntervalMs?: number;
  /** Called whenever a pending request's queue state changes (e.g. `paused_capacity`). */
  onQueueStateChange?: (change: QueueStateChange) => void;
  /**
   * Where log lines go: warnings (paused queues, failing heartbeats), and at `logLevel: "debug"` one line per HTTP
   * attempt. Default: stderr, prefixed `[tinker-ts]`.
   */
  logger?: Logger;
  /** How much is logged: `"debug"`, `"info"`, `"warn"` (default), `"error"` or `"off"`. Default: `TINKER_LOG`, else `"warn"`. */
  logLevel?: LogLevel;
  /** Called before each wait for a retry (e.g. to print "retrying…"). */
  onRetry?: (event: RetryEvent) => void;
  /** @internal Injected sleep for tests. */
  sleep?: SleepFn;
  /** @internal Injected clock (ms) of the retry budget, for tests (with `sleep`). */
  now?: () => number;
}

/** Options of {@link ServiceClient.createLoraTrainingClient}. */
export interface CreateLoraTrainingClientOptions extends RequestOptions {
  /** Base model, e.g. `"Qwen/Qwen3-8B"` (see {@link ServiceClient.getServerCapabilities}). */
  baseModel: string;
  /** LoRA rank (default 32). */
  rank?: number;
  /** Seed of the LoRA initialisation. */
  seed?: number;
  /** Train the MLP adapters (default true). */
  trainMlp?: boolean;
  /** Train the attention adapters (default true). */
  trainAttn?: boolean;
  /** Train the unembedding adapter (default true). */
  trainUnembed?: boolean;
  /** Metadata stored with the training run. */
  userMetadata?: Record<string, unknown>;
}

/** Options of the `createTrainingClientFromState*` helpers. */
export interface CreateFromStateOptions extends RequestOptions {
  /** Override the checkpoint's base model (must be compatible). */
  baseModel?: string;
  /** Metadata stored with the new training run. */
  userMetadata?: Record<string, unknown>;
  /** Token granting access to another user's checkpoint, when needed. */
  weightsAccessToken?: string;
}

const PAUSED_LOG_INTERVAL_MS = 60_000;
const HEARTBEAT_WARN_AFTER_MS = 120_000;
const POLL_TIMEOUT_MS = 45_000;

/**
 * The entry point of tinker-ts. Constructing it sends nothing; the session (and its heartbeats) starts with the
 * first training client, and {@link createRestClient} never creates one. Close it with {@link close} or
 * `await using`.
 *
 * @throws {ConfigurationError} when no server is configured (neither options nor `TINKER_BASE_URL` /
 *   `TINKER_API_KEY`), or the key is malformed.
 * @throws {InvalidArgumentError} when `logLevel` is not a level, or `onRequest` / `onResponse` is not a function.
 * @example
 * ```ts
 * await using service = new ServiceClient(); // TINKER_BASE_URL, TINKER_API_KEY
 * const training = await service.createLoraTrainingClient({ baseModel: "Qwen/Qwen3-8B", rank: 16 });
 * await training.forwardBackward([crossEntropyDatum([1, 2, 3, 4])], "cross_entropy");
 * await training.optimStep({ learning_rate: 1e-4 });
 * const { path } = await training.saveState("step-1");
 * ```
 */
export class ServiceClient {
  /** The server base URL in use. */
  readonly baseUrl: string;
  readonly #transport: Transport;
  readonly #auth: ClientAuth;
  readonly #tokenTransport: (token: string) => { transport: Transport; auth: ClientAuth };
  readonly #options: ServiceClientOptions;
  readonly #closed = new AbortController();
  readonly #logger: Log;
  readonly #poller: PollerContext;
  #session: Promise<string> | undefined;
  #config: Promise<ClientConfig> | undefined;
  #budget: ByteBudget | undefined;
  #modelSeq = 0;
  /** The session's sampling counter: create_sampling_session and unnamed sampler saves each take one (§10.4). */
  #samplingSeq = 0;
  readonly #sampling: SamplingContext;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #lastHeartbeatOk = Date.now();
  #heartbeatWarned = false;
  readonly #lastPausedLog = new Map<string, number>();

  /** Builds the client from options, falling back to `TINKER_BASE_URL` / `TINKER_API_KEY`. Sends nothing. */
  constructor(options: ServiceClientOptions = {}) {
    const { baseUrl, apiKey, credentialCmd } = resolveCredentials(options);
    this.#options = options;
    // Every line logged goes through the one redaction (the key, and every token obtained once the transport exists).
    this.#logger = new Log({ logger: options.logger, logLevel: options.logLevel, env: process.env, secrets: [apiKey] });
    const defaultHeaders = { ...cloudflareAccessHeaders(process.env), ...options.defaultHeaders };
    const shared = {
      baseUrl,
      log: this.#logger,
      ...(options.onRequest === undefined ? {} : { onRequest: options.onRequest }),
      ...(options.onResponse === undefined ? {} : { onResponse: options.onResponse }),
      loadConfig: () => this.#clientConfig({}),
      defaultHeaders,
      ...(options.maxRetries === undefined ? {} : { maxRetries: options.maxRetries }),
      ...(options.retryBudgetMs === undefined ? {} : { retryBudgetMs: options.retryBudgetMs }),
      ...(options.onRetry === undefined ? {} : { onRetry: options.onRetry }),
      ...(options.now === undefined ? {} : { now: options.now }),
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
      ...(options.proxy === undefined ? {} : { proxy: options.proxy }),
      ...(options.sleep === undefined ? {} : { sleep: options.sleep }),
    };
    const { transport, auth } = createAuthTransport({ ...shared, apiKey, credentialCmd });
    // Another account's checkpoint is read with its token, authenticated the same way (JWT mode included).
    this.#tokenTransport = (token) => createAuthTransport({ ...shared, apiKey: token });
    this.#transport = transport;
    this.#auth = auth;
    this.baseUrl = this.#transport.baseUrl;
    const secrets = transport.secrets;
    this.#logger.secrets = secrets;
    this.#poller = {
      pollOnce: (body, signal, headers) => this.#pollOnce(body, signal, headers),
      sleep: options.sleep ?? abortableSleep,
      random: Math.random,
      onQueueStateChange: options.onQueueStateChange,
      logPaused: (change) => this.#logPaused(change),
      secrets,
      closed: this.#closed.signal,
      ...(options.retryBudgetMs === undefined ? {} : { retryBudgetMs: options.retryBudgetMs }),
      ...(options.now === undefined ? {} : { now: options.now }),
    };
    this.#sampling = {
      transport: this.#transport,
      poller: this.#poller,
      sleep: this.#poller.sleep,
      random: Math.random,
      backoff: { until: 0 },
    };
  }

  /**
   * Lists the base models the server supports. Needs no session.
   *
   * @example
   * ```ts
   * const { supported_models } = await service.getServerCapabilities();
   * ```
   */
  getServerCapabilities(options: RequestOptions = {}): Promise<GetServerCapabilitiesResponse> {
    return this.#transport.call(
      "get_server_capabilities",
      (init) => this.#transport.api.GET("/api/v1/get_server_capabilities", { ...init }),
      GetServerCapabilitiesResponseSchema,
      options,
    );
  }

  /**
   * A client for listing, inspecting, publishing, expiring and deleting checkpoints, runs and sessions.
   * Never creates a session.
   *
   * @example
   * ```ts
   * const rest = service.createRestClient();
   * for await (const ckpt of rest.iterUserCheckpoints()) console.log(ckpt.tinker_path);
   * ```
   */
  createRestClient(): RestClient {
    this.#assertOpen();
    return new RestClient(this.#transport);
  }

  /**
   * Creates a LoRA model to train (a new training run) and returns its client. Starts the session (and its
   * heartbeats) on first use.
   *
   * @throws {InvalidArgumentError} before sending, for a missing base model, a bad rank, or no trained module.
   * @example
   * ```ts
   * const training = await service.createLoraTrainingClient({ baseModel: "meta-llama/Llama-3.2-1B", rank: 8 });
   * console.log(training.modelId);
   * ```
   */
  async createLoraTrainingClient(options: CreateLoraTrainingClientOptions): Promise<TrainingClient> {
    this.#assertOpen();
    const { baseModel, rank = 32, seed, trainMlp = true, trainAttn = true, trainUnembed = true, userMetadata } = options ?? {};
    if (typeof baseModel !== "string" || baseModel.trim() === "") {
      throw new InvalidArgumentError(
        'createLoraTrainingClient needs a baseModel, e.g. { baseModel: "Qwen/Qwen3-8B" } (see getServerCapabilities()).',
      );
    }
    if (!Number.isInteger(rank) || rank < 1) {
      throw new InvalidArgumentError(`rank must be a positive integer, got ${String(rank)}.`);
    }
    if (seed !== undefined && !Number.isInteger(seed)) {
      throw new InvalidArgumentError(`seed must be an integer, got ${String(seed)}.`);
    }
    if (!trainMlp && !trainAttn && !trainUnembed) {
      throw new InvalidArgumentError("At least one of trainMlp, trainAttn and trainUnembed must be true.");
    }
    const config = await this.#clientConfig(options);
    const modelSeqId = this.#modelSeq++;
    const sessionId = await this.#ensureSession(options);
    const ctx = this.#trainingContext(config);
    const created = await submitFuture(ctx, {
      operation: "create_model",
      seqId: 0,
      send: (init) =>
        this.#transport.api.POST("/api/v1/create_model", {
          body: {
            session_id: sessionId,
            model_seq_id: modelSeqId,
            base_model: baseModel,
            ...(userMetadata === undefined ? {} : { user_metadata: userMetadata }),
            lora_config: {
              rank,
              ...(seed === undefined ? {} : { seed }),
              train_unembed: trainUnembed,
              train_mlp: trainMlp,
              train_attn: trainAttn,
            },
            type: "create_model",
          },
          ...init,
        }),
      schema: CreateModelResponseSchema,
      options,
    });
    return new TrainingClient(ctx, { modelId: created.model_id, baseModel });
  }

  /**
   * Creates a sampling client on a checkpoint (`modelPath`: a sampler or a training checkpoint) or a base model
   * (`baseModel`). Starts the session on first use and takes the next value of its sampling counter.
   *
   * @throws {InvalidArgumentError} / {@link InvalidTinkerPathError} before sending: neither `modelPath` nor `baseModel`,
   *   or a malformed `tinker://` path.
   * @throws {NotFoundError} when the checkpoint does not exist (or was deleted); the message names the path.
   * @example
   * ```ts
   * const sampler = await service.createSamplingClient({ modelPath: "tinker://run-1/sampler_weights/final" });
   * const base = await service.createSamplingClient({ baseModel: "Qwen/Qwen3-8B" });
   * ```
   */
  async createSamplingClient(options: CreateSamplingClientOptions): Promise<SamplingClient> {
    this.#assertOpen();
    const { modelPath, baseModel, maxConcurrentRequests } = options ?? {};
    if ((modelPath === undefined || modelPath === "") && (baseModel === undefined || baseModel.trim() === "")) {
      throw new InvalidArgumentError(
        'createSamplingClient needs { modelPath: "tinker://<run>/sampler_weights/<name>" } or { baseModel: "Qwen/Qwen3-8B" }.',
      );
    }
    if (modelPath !== undefined && modelPath !== "") parseTinkerPath(modelPath);
    if (baseModel !== undefined && (typeof baseModel !== "string" || baseModel.trim() === "")) {
      throw new InvalidArgumentError(`baseModel must be a model name such as "Qwen/Qwen3-8B", got ${JSON.stringify(baseModel)}.`);
    }
    checkConcurrency(maxConcurrentRequests);
    const config = await this.#clientConfig(options);
    const sessionId = await this.#ensureSession(options);
    const seq = this.#samplingSeq++;
    const res = await this.#transport.call(
      "create_sampling_session",
      (init) =>
        this.#transport.api.POST("/api/v1/create_sampling_session", {
          body: {
            session_id: sessionId,
            sampling_session_seq_id: seq,
            ...(baseModel === undefined ? {} : { base_model: baseModel }),
            ...(modelPath === undefined || modelPath === "" ? {} : { model_path: modelPath }),
            type: "create_sampling_session",
          },
          ...init,
        }),
      CreateSamplingSessionResponseSchema,
      { ...requestOptionsOf(options), idempotencyKey: randomUUID() },
    );
    return new SamplingClient(this.#sampling, {
      samplingSessionId: res.sampling_session_id,
      modelPath: modelPath || null,
      baseModel: baseModel ?? null,
      // The caller's limit, else the service's (client config). The Python SDK applies the service's even over the caller's.
      maxConcurrentRequests: maxConcurrentRequests ?? config.sample_max_concurrent_requests,
    });
  }

  /**
   * Creates a training client from a training checkpoint, loading its **weights only** (fresh optimizer).
   * The LoRA config (rank, `train_*` flags) and base model come from the checkpoint's metadata. If anything
   * fails after the model was created, the model is unloaded and the original error is thrown.
   *
   * @throws {InvalidTinkerPathError} / {@link InvalidArgumentError} before any request, for an invalid path or a
   *   `sampler_weights` path.
   * @example
   * ```ts
   * const warm = await service.createTrainingClientFromState("tinker://run-1/weights/epoch-3");
   * ```
   */
  createTrainingClientFromState(path: string, options: CreateFromStateOptions = {}): Promise<TrainingClient> {
    return this.#fromState(path, false, options);
  }

  /**
   * Creates a training client from a training checkpoint, restoring weights **and** optimizer state: training
   * continues exactly as if it had never stopped. Cleans up like {@link createTrainingClientFromState}.
   *
   * @throws {InvalidTinkerPathError} / {@link InvalidArgumentError} before any request, for an invalid path or a
   *   `sampler_weights` path.
   * @example
   * ```ts
   * const resumed = await service.createTrainingClientFromStateWithOptimizer("tinker://run-1/weights/epoch-3");
   * ```
   */
  createTrainingClientFromStateWithOptimizer(path: string, options: CreateFromStateOptions = {}): Promise<TrainingClient> {
    return this.#fromState(path, true, options);
  }

  /**
   * Stops heartbeats and any polling in progress (pending futures reject with {@link APIUserAbortError}; the
   * server may still complete their work). Idempotent. Also called by `await using`.
   *
   * @example
   * ```ts
   * await service.close();
   * ```
   */
  async close(): Promise<void> {
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
    this.#auth.close();
    this.#closed.abort();
  }

  /** `await using service = new ServiceClient()` closes it at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #fromState(path: string, optimizer: boolean, options: CreateFromStateOptions): Promise<TrainingClient> {
    this.#assertOpen();
    const method = optimizer ? "createTrainingClientFromStateWithOptimizer" : "createTrainingClientFromState";
    const parsed = parseTinkerPath(path);
    if (parsed.checkpointKind !== "weights") {
      throw new InvalidArgumentError(
        `${method} needs a training checkpoint (tinker://<run>/weights/<name>), but ${path} is a sampler checkpoint: sampler weights hold no optimizer state and cannot seed training. Pass the path that saveState returned.`,
      );
    }
    const call = requestOptionsOf(options);
    const token = options.weightsAccessToken;
    if (token !== undefined && (typeof token !== "string" || !(token.startsWith("tml-") || token.startsWith("eyJ")))) {
      throw new InvalidArgumentError("weightsAccessToken must be the checkpoint owner's API key (tml-…) or a JWT (eyJ…).");
    }
    const config = await this.#clientConfig(options);
    if (config.create_model_via_load_weights) return this.#createViaLoad(path, optimizer, options, config);
    // With a weights access token, the checkpoint's info is read as its owner (as the Python SDK does), and the
    // credential that token resolves to (a JWT in JWT mode) goes with load_weights.
    const reader = token === undefined ? undefined : this.#tokenTransport(token);
    let info: z.output<typeof WeightsInfoResponseSchema>;
    let loadToken: string | undefined;
    try {
      const t = reader?.transport ?? this.#transport;
      info = await t.call(
        "weights_info",
        (init) => t.api.POST("/api/v1/weights_info", { body: { tinker_path: path }, ...init }),
        WeightsInfoResponseSchema,
        call,
      );
      loadToken = reader === undefined ? undefined : await reader.auth.credentialFor("/api/v1/weights_info");
    } finally {
      reader?.auth.close();
    }
    if (info.lora_rank === undefined || info.lora_rank === null) {
      throw new InvalidArgumentError(
        `${method} cannot recreate the model of ${path}: its weights info has no LoRA rank (is_lora: ${String(info.is_lora ?? "unknown")}), and tinker-ts only trains LoRA models. Create a client with createLoraTrainingClient({ baseModel: ${JSON.stringify(info.base_model)}, rank }) and call loadState(${JSON.stringify(path)}) if you know the rank.`,
      );
    }
    const training = await this.createLoraTrainingClient({
      ...call,
      baseModel: options.baseModel ?? info.base_model,
      rank: info.lora_rank,
      trainMlp: info.train_mlp ?? true,
      trainAttn: info.train_attn ?? true,
      trainUnembed: info.train_unembed ?? true,
      ...(options.userMetadata === undefined ? {} : { userMetadata: options.userMetadata }),
    });
    try {
      const loadOptions = { ...call, ...(loadToken === undefined ? {} : { weightsAccessToken: loadToken }) };
      await (optimizer ? training.loadStateWithOptimizer(path, loadOptions) : training.loadState(path, loadOptions));
      return training;
    } catch (err) {
      await this.#unloadAfterFailure(training, method);
      throw err;
    }
  }

  /** Unloads a model whose bootstrap failed, so nothing leaks; a failed unload is logged, never thrown. */
  async #unloadAfterFailure(training: TrainingClient, method: string): Promise<void> {
    try {
      await training.unload().result({ timeoutMs: 30_000 });
    } catch (cleanupErr) {
      this.#logger.warn(
        `tinker-ts: could not unload model ${training.modelId} after a failed ${method}: ${cleanupErr instanceof Error ? cleanupErr.message : String(cleanupErr)}`,
      );
    }
  }

  /**
   * `create_model_via_load_weights`: one session-addressed `load_weights` creates the model from the checkpoint
   * (its seq 0; the server derives the LoRA config), model id `<session_id>:train:<model_seq_id>`.
   */
  async #createViaLoad(path: string, optimizer: boolean, options: CreateFromStateOptions, config: ClientConfig): Promise<TrainingClient> {
    const modelSeqId = this.#modelSeq++;
    const sessionId = await this.#ensureSession(options);
    const ctx = this.#trainingContext(config);
    const { baseModel, userMetadata, weightsAccessToken } = options;
    await submitFuture(ctx, {
      operation: "load_weights",
      seqId: 0,
      send: (init) =>
        this.#transport.api.POST("/api/v1/load_weights", {
          body: {
            session_id: sessionId,
            model_seq_id: modelSeqId,
            ...(baseModel === undefined ? {} : { base_model: baseModel }),
            ...(userMetadata === undefined ? {} : { user_metadata: userMetadata }),
            path,
            optimizer,
            ...(weightsAccessToken === undefined ? {} : { weights_access_token: weightsAccessToken }),
            type: "load_weights",
          },
          ...init,
        }),
      schema: LoadWeightsResponseSchema,
      options,
    });
    const modelId = `${sessionId}:train:${modelSeqId}`;
    const training = new TrainingClient(ctx, { modelId, baseModel: baseModel ?? "" });
    if (baseModel !== undefined) return training;
    // The base model comes from the checkpoint; ask the model itself (and unload it if that fails: nothing leaks).
    try {
      const info = await training.getInfo(requestOptionsOf(options));
      return new TrainingClient(ctx, { modelId, baseModel: info.model_data.model_name ?? info.model_name ?? "" });
    } catch (err) {
      await this.#unloadAfterFailure(training, "createTrainingClientFromState");
      throw err;
    }
  }

  /** The client config, read once per ServiceClient (a failed read is retried by the next caller; a 404 means every default). */
  #clientConfig(options: RequestOptions): Promise<ClientConfig> {
    if (this.#config === undefined) {
      const config = this.#transport
        .call(
          "client_config",
          (init) => this.#transport.api.POST("/api/v1/client/config", { body: { sdk_version: SDK_VERSION }, ...init }),
          ClientConfigSchema,
          requestOptionsOf(options),
        )
        // A server without the endpoint behaves as one that answers `{}`: every default applies.
        .catch((err: unknown) => {
          if (err instanceof NotFoundError) return DEFAULT_CLIENT_CONFIG;
          throw err;
        });
      config.catch(() => {
        if (this.#config === config) this.#config = undefined;
      });
      this.#config = config;
    }
    return this.#config;
  }

  #trainingContext(config: ClientConfig) {
    this.#budget ??= new ByteBudget(config.fwdbwd_dispatch_bytes_semaphore_size);
    const sampling = { context: this.#sampling, nextSeq: () => this.#samplingSeq++ };
    return { transport: this.#transport, poller: this.#poller, config, budget: this.#budget, sampling };
  }

  #ensureSession(options: RequestOptions): Promise<string> {
    if (this.#session === undefined) {
      const env = process.env;
      const tags = this.#options.tags ?? [
        ...new Set(
          (nonEmpty(env["TINKER_TAGS"]) ?? "")
            .split(",")
            .map((t) => t.trim())
            .filter((t) => t !== ""),
        ),
      ];
      const projectId = this.#options.projectId ?? nonEmpty(env["TINKER_PROJECT_ID"]);
      const session = this.#transport
        .call(
          "create_session",
          (init) =>
            this.#transport.api.POST("/api/v1/create_session", {
              body: {
                tags,
                user_metadata: this.#options.userMetadata ?? {},
                sdk_version: SDK_VERSION,
                ...(projectId === undefined ? {} : { project_id: projectId }),
                type: "create_session",
              },
              ...init,
            }),
          CreateSessionResponseSchema,
          { ...requestOptionsOf(options), idempotencyKey: randomUUID() },
        )
        .then((res) => {
          if (res.warning_message) this.#logger.warn(`tinker-ts: ${res.warning_message}`);
          if (res.error_message) this.#logger.warn(`tinker-ts: ${res.error_message}`);
          this.#startHeartbeat(res.session_id);
          return res.session_id;
        });
      // A failed creation is retried by the next training client.
      session.catch(() => {
        if (this.#session === session) this.#session = undefined;
      });
      this.#session = session;
    }
    return this.#session;
  }

  #startHeartbeat(sessionId: string): void {
    if (this.#closed.signal.aborted) return;
    this.#lastHeartbeatOk = Date.now();
    const interval = this.#options.heartbeatIntervalMs ?? 10_000;
    this.#heartbeat = setInterval(() => {
      this.#transport
        .call(
          "session_heartbeat",
          (init) =>
            this.#transport.api.POST("/api/v1/session_heartbeat", { body: { session_id: sessionId, type: "session_heartbeat" }, ...init }),
          SessionHeartbeatResponseSchema,
          // One short attempt, and a 402 is no reason to wait: a heartbeat never keeps a finished script alive.
          { maxRetries: 0, timeoutMs: 10_000, noRetryStatuses: [402], signal: this.#closed.signal },
        )
        .then(
          () => {
            this.#lastHeartbeatOk = Date.now();
            this.#heartbeatWarned = false;
          },
          (err: unknown) => {
            if (this.#closed.signal.aborted) return;
            if (!this.#heartbeatWarned && Date.now() - this.#lastHeartbeatOk > HEARTBEAT_WARN_AFTER_MS) {
              this.#heartbeatWarned = true;
              this.#logger.warn(
                `tinker-ts: session ${sessionId} heartbeats have failed for over ${HEARTBEAT_WARN_AFTER_MS / 1000} s (${err instanceof Error ? err.message : String(err)}); the service may end the session.`,
              );
            }
          },
        );
    }, interval);
    // Heartbeats never keep a finished script alive.
    this.#heartbeat.unref();
  }

  /** One poll, read once whatever the status: the poller decides on status, headers and body. */
  #pollOnce(body: { request_id: string; allow_metadata_only: boolean }, signal: AbortSignal, extra: PollHeaders = {}): Promise<PollAnswer> {
    const headers: Record<string, string> = {};
    if (extra.accept !== undefined) headers["Accept"] = extra.accept;
    if (extra.requestType !== undefined) headers["X-Tinker-Request-Type"] = extra.requestType;
    if (extra.iteration !== undefined) headers["X-Tinker-Request-Iteration"] = String(extra.iteration);
    return this.#transport.answer("retrieve_future", (init) => this.#transport.api.POST("/api/v1/retrieve_future", { body, ...init }), {
      signal,
      maxRetries: 0,
      timeoutMs: POLL_TIMEOUT_MS,
      headers,
    });
  }

  #logPaused(change: QueueStateChange): void {
    const key = `${change.operation}:${change.queueState}`;
    const now = Date.now();
    const last = this.#lastPausedLog.get(key);
    if (last !== undefined && now - last < PAUSED_LOG_INTERVAL_MS) return;
    this.#lastPausedLog.set(key, now);
    const state = change.queueState.replace(/^paused_/, "").replace(/_/g, " ");
    this.#logger.warn(
      `tinker-ts: ${change.operation} ${change.requestId} is paused: ${state}${change.reason ? ` (${change.reason})` : ""}.`,
    );
  }

  #assertOpen(): void {
    if (this.#closed.signal.aborted) throw new TinkerError("This ServiceClient is closed; create a new one.");
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value.trim();
}
