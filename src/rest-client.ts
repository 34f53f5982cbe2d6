/**
 * The REST client: training runs, checkpoints (list, inspect, archive URL, delete, publish, TTL) and sessions.
 *
 * Every method validates its response with zod and returns the wire type (snake_case fields, as in the spec).
 * Every method ends with an options object: `signal`, `timeoutMs` (per attempt) and `maxRetries`.
 *
 * @module
 */
import { fetchSampler, type GetSamplerResponse } from "./sampling-client.js";
import type { components } from "./core/wire.js";
import { type APIConnectionError, APIUserAbortError, InvalidArgumentError } from "./core/errors.js";
import {
  CheckpointsListResponseSchema,
  GetSessionResponseSchema,
  ListSessionsResponseSchema,
  TrainingRunSchema,
  TrainingRunsResponseSchema,
  WeightsInfoResponseSchema,
} from "./internal/schemas.js";
import { readArchiveAnswer } from "./internal/archive-answer.js";
import {
  type CheckpointRef,
  checkRunId,
  checkpointNotFound,
  checkpointRef,
  refFromPath,
  withCheckpointNotFound,
} from "./internal/checkpoint-ref.js";
import { cloudflareAccessHeaders, resolveCredentials } from "./internal/config.js";
import { createAuthTransport } from "./internal/auth-transport.js";
import { RestAccountClient } from "./rest-account.js";
import { backoffMs, retryAfterMs } from "./internal/backoff.js";
import type { RequestOptions } from "./core/options.js";
import { DEFAULT_PAGE_SIZE, checkPaging, paginate, type PageProgress } from "./internal/paginate.js";
import { requestOptionsOf } from "./internal/request-options.js";
import { rewordAPIError } from "./internal/reword.js";
import { abortableSleep, type SleepFn } from "./internal/sleep.js";
import { parseTinkerPath } from "./core/tinker-path.js";
import type { Transport, CallOptions, TransportConfig } from "./internal/transport.js";
import { InvalidTtlError, validateTtlSeconds } from "./core/ttl.js";

/** A checkpoint, as listed by the service. */
export type CheckpointInfo = components["schemas"]["Checkpoint"];
/** A training run with its latest checkpoints. */
export type TrainingRunInfo = components["schemas"]["TrainingRun"];
/** A page of training runs (`cursor.total_count` is the total). */
export type TrainingRunsPage = components["schemas"]["TrainingRunsResponse"];
/** A list of checkpoints; `cursor` is set for the paged user-wide list. */
export type CheckpointsPage = components["schemas"]["CheckpointsListResponse"];
/** The base model and LoRA configuration of a checkpoint. */
export type WeightsInfo = components["schemas"]["WeightsInfoResponse"];
/** Session ids of the user. */
export type SessionsPage = components["schemas"]["ListSessionsResponse"];
/** The training runs and samplers of a session. */
export type SessionInfo = components["schemas"]["GetSessionResponse"];
/** Whose resources a call sees: `owned` (default on the service) or everything `accessible` to the key. */
export type AccessScope = components["schemas"]["AccessScope"];

/** Adds `accessScope` to a call on runs or sessions. */
export interface AccessScopeOptions extends RequestOptions {
  /** `owned` (the service default) or `accessible` (also resources shared with this key). */
  accessScope?: AccessScope;
}

/** Offset paging of one list call. */
export interface PageOptions extends RequestOptions {
  /** Page size (1–1000; the service default applies when absent). */
  limit?: number;
  /** Items to skip (default 0). */
  offset?: number;
}

export { DEFAULT_PAGE_SIZE, type PageProgress };

/** Options of the lazy iterators ({@link RestClient.iterTrainingRuns}, {@link RestClient.iterUserCheckpoints}). */
export interface IterOptions extends RequestOptions {
  /** Items per request (default 100, at most 1000). */
  pageSize?: number;
  /** Called after each page is fetched, before its items are yielded; e.g. to show progress. */
  onPage?: (page: PageProgress) => void;
}

/** A signed, expiring download URL of a checkpoint archive. */
export interface CheckpointArchiveUrl {
  /** The signed URL; fetch it without credentials. */
  url: string;
  /** When it stops working, as an ISO-8601 UTC timestamp. */
  expires: string;
}

/** Options of the archive-URL calls. */
export interface ArchiveUrlOptions extends RequestOptions {
  /**
   * Delay between polls while the service answers 503 "archive still being generated" (default: the
   * `Retry-After` header, else 30 000 ms).
   */
  archiveRetryDelayMs?: number;
  /** Attempts while the archive is being generated, counting the first (default 6). */
  archiveMaxAttempts?: number;
  /** Called with the attempt number (1 for the first 503) each time the archive is not ready yet. */
  onArchivePending?: (attempt: number) => void;
}

/** Client-wide settings of {@link RestClient}. */
export interface RestClientOptions {
  /** Default of {@link ArchiveUrlOptions.archiveRetryDelayMs}. */
  archiveRetryDelayMs?: number;
  /** Default of {@link ArchiveUrlOptions.archiveMaxAttempts} (6). */
  archiveMaxAttempts?: number;
  /** Sleep between archive polls and retries; inject in tests. */
  sleep?: SleepFn;
}

/** Settings of {@link RestClient.fromEnv}. */
export type RestClientEnvOptions = Partial<TransportConfig> & RestClientOptions;

/** Attempts at the archive endpoint while it answers 503, unless configured otherwise. */
export const DEFAULT_ARCHIVE_MAX_ATTEMPTS = 6;
/** Delay between archive polls when the service sends no `Retry-After`. */
export const DEFAULT_ARCHIVE_RETRY_DELAY_MS = 30_000;
/** The wait between archive polls without `Retry-After`: a constant {@link DEFAULT_ARCHIVE_RETRY_DELAY_MS}. */
const ARCHIVE_WAIT = { initialMs: DEFAULT_ARCHIVE_RETRY_DELAY_MS, maxMs: DEFAULT_ARCHIVE_RETRY_DELAY_MS, jitter: 0 };
/** How long a 302 signed URL without an `Expires` header is assumed valid. */
export const DEFAULT_ARCHIVE_URL_LIFETIME_MS = 15 * 60_000;

const CHECKPOINT_ROUTE = "/api/v1/training_runs/{training_run_id}/checkpoints/{checkpoint_kind}/{checkpoint_name}" as const;

/** The wire query of a paged listing (limit/offset checked first), with `access_scope` when given. */
function pageQuery(options: PageOptions & Partial<AccessScopeOptions>): { limit?: number; offset?: number; access_scope?: AccessScope } {
  checkPaging(options.limit, options.offset);
  const query: { limit?: number; offset?: number; access_scope?: AccessScope } = {};
  if (options.limit !== undefined) query.limit = options.limit;
  if (options.offset !== undefined) query.offset = options.offset;
  if (options.accessScope !== undefined) query.access_scope = options.accessScope;
  return query;
}

/**
 * REST access to training runs, checkpoints and sessions. Get one from `service.createRestClient()`, build it
 * on a {@link Transport}, or use {@link RestClient.fromEnv}. Creating it sends nothing (and never creates a
 * session).
 *
 * @example
 * ```ts
 * const rest = service.createRestClient();
 * for await (const ckpt of rest.iterUserCheckpoints()) console.log(ckpt.tinker_path, ckpt.size_bytes);
 * await rest.setCheckpointTtlFromTinkerPath("tinker://run-1/weights/final", null); // keep forever
 * ```
 */
export class RestClient extends RestAccountClient {
  /** The credentials a {@link RestClient.fromEnv} client owns (and closes); a service's RestClient shares its own. */
  #ownedAuth: { close(): void } | undefined;
  readonly #options: RestClientOptions;
  readonly #sleep: SleepFn;

  /**
   * Creates a REST client on `transport`. Sends nothing. From the package, get one with
   * `service.createRestClient()` or {@link RestClient.fromEnv}; this constructor is how they make it.
   *
   * @example
   * ```ts
   * import { Transport } from "./internal/transport.js";
   *
   * const rest = new RestClient(new Transport({ baseUrl: "http://127.0.0.1:8080", apiKey: "tml-local" }));
   * ```
   */
  constructor(transport: Transport, options: RestClientOptions = {}) {
    super(transport);
    this.#options = { ...options };
    this.#sleep = options.sleep ?? abortableSleep;
  }

  /**
   * Creates a REST client from options, defaulting `baseUrl`/`apiKey` to `TINKER_BASE_URL`/`TINKER_API_KEY` (with a
   * key but no URL, the Tinker service), and `logLevel` to `TINKER_LOG`, exactly as `ServiceClient` does.
   *
   * @throws {ConfigurationError} when nothing is configured (the message says how to start the local server), the
   *   key is missing, or the key is malformed.
   * @throws {TinkerError} when the base URL or API key is invalid.
   * @example
   * ```ts
   * const rest = RestClient.fromEnv({ maxRetries: 4 });
   * ```
   */
  static fromEnv(options: RestClientEnvOptions = {}, env: NodeJS.ProcessEnv = process.env): RestClient {
    const { baseUrl, apiKey, credentialCmd } = resolveCredentials(options, env);
    const { archiveRetryDelayMs, archiveMaxAttempts, sleep, ...transport } = options;
    const restOptions: RestClientOptions = {};
    if (archiveRetryDelayMs !== undefined) restOptions.archiveRetryDelayMs = archiveRetryDelayMs;
    if (archiveMaxAttempts !== undefined) restOptions.archiveMaxAttempts = archiveMaxAttempts;
    if (sleep !== undefined) restOptions.sleep = sleep;
    const defaultHeaders = { ...cloudflareAccessHeaders(env), ...transport.defaultHeaders };
    const { transport: t, auth } = createAuthTransport({
      proxyEnv: env,
      ...transport,
      baseUrl,
      apiKey,
      credentialCmd,
      defaultHeaders,
      env,
    });
    const rest = new RestClient(t, restOptions);
    rest.#ownedAuth = auth;
    return rest;
  }

  /**
   * Releases what this client owns: for a client from {@link RestClient.fromEnv}, its credentials (in JWT mode,
   * the background token refresh stops; it never keeps a process alive, but it does call the service). A client
   * from `service.createRestClient()` shares the ServiceClient's credentials, so this leaves them alone: close the
   * ServiceClient. Also `await using rest = RestClient.fromEnv()`.
   *
   * @example
   * ```ts
   * const rest = RestClient.fromEnv();
   * try {
   *   console.log((await rest.listTrainingRuns()).training_runs.length);
   * } finally {
   *   await rest.close();
   * }
   * ```
   */
  async close(): Promise<void> {
    this.#ownedAuth?.close();
    this.#ownedAuth = undefined;
  }

  /**
   * {@link RestClient.close}, for `await using`.
   *
   * @example
   * ```ts
   * await using rest = RestClient.fromEnv();
   * await rest.listTrainingRuns();
   * ```
   */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ---------------------------------------------------------------------------------------------- runs

  /**
   * Gets one training run with its last training and sampler checkpoints.
   *
   * @throws {NotFoundError} when the run does not exist or is not visible in the access scope.
   * @throws {APIError} for other error statuses; {@link APIConnectionError} when the server is unreachable.
   * @example
   * ```ts
   * const run = await rest.getTrainingRun("sess-0:train:0");
   * console.log(run.base_model, run.lora_rank, run.last_checkpoint?.tinker_path);
   * ```
   */
  async getTrainingRun(runId: string, options: AccessScopeOptions = {}): Promise<TrainingRunInfo> {
    checkRunId(runId);
    const t = this.transport;
    const query = options.accessScope === undefined ? {} : { access_scope: options.accessScope };
    return t.call(
      "get_training_run",
      (init) => t.api.GET("/api/v1/training_runs/{training_run_id}", { params: { path: { training_run_id: runId }, query }, ...init }),
      TrainingRunSchema,
      requestOptionsOf(options),
    );
  }

  /**
   * Gets the training run a checkpoint belongs to.
   *
   * @throws {InvalidTinkerPathError} when `tinkerPath` is malformed (nothing is sent).
   * @throws {NotFoundError} when the run does not exist.
   * @example
   * ```ts
   * const run = await rest.getTrainingRunByTinkerPath("tinker://sess-0:train:0/weights/ckpt-1");
   * ```
   */
  async getTrainingRunByTinkerPath(tinkerPath: string, options: AccessScopeOptions = {}): Promise<TrainingRunInfo> {
    return this.getTrainingRun(parseTinkerPath(tinkerPath).trainingRunId, options);
  }

  /**
   * Lists one page of training runs (`cursor.total_count` is the total).
   *
   * @throws {InvalidArgumentError} when `limit`/`offset` are out of range (nothing is sent).
   * @example
   * ```ts
   * const page = await rest.listTrainingRuns({ limit: 20, offset: 0 });
   * console.log(page.cursor.total_count, page.training_runs.map((r) => r.training_run_id));
   * ```
   */
  async listTrainingRuns(options: PageOptions & AccessScopeOptions & { projectId?: string } = {}): Promise<TrainingRunsPage> {
    const t = this.transport;
    const query = { ...pageQuery(options), ...(options.projectId === undefined ? {} : { project_id: options.projectId }) };
    return t.call(
      "list_training_runs",
      (init) => t.api.GET("/api/v1/training_runs", { params: { query }, ...init }),
      TrainingRunsResponseSchema,
      requestOptionsOf(options),
    );
  }

  /**
   * Iterates over every training run, fetching pages lazily (one request per `pageSize` runs, only as far
   * as you consume). Stops at `cursor.total_count` or on a short or empty page.
   *
   * @example
   * ```ts
   * for await (const run of rest.iterTrainingRuns({ pageSize: 50 })) {
   *   if (run.corrupted) console.warn("corrupted:", run.training_run_id);
   * }
   * ```
   */
  iterTrainingRuns(options: IterOptions & AccessScopeOptions = {}): AsyncIterable<TrainingRunInfo> {
    const { pageSize, onPage, ...rest } = options;
    return paginate(pageSize, onPage, async (limit, offset) => {
      const page = await this.listTrainingRuns({ ...rest, limit, offset });
      return { items: page.training_runs, totalCount: page.cursor.total_count };
    });
  }

  // ------------------------------------------------------------------------------------- checkpoints

  /**
   * Lists all checkpoints of one training run (not paged).
   *
   * @throws {NotFoundError} when the run does not exist.
   * @example
   * ```ts
   * const { checkpoints } = await rest.listCheckpoints("sess-0:train:0");
   * for (const c of checkpoints) console.log(c.checkpoint_id, c.size_bytes);
   * ```
   */
  async listCheckpoints(runId: string, options: RequestOptions = {}): Promise<CheckpointsPage> {
    checkRunId(runId);
    const t = this.transport;
    return t.call(
      "list_checkpoints",
      (init) => t.api.GET("/api/v1/training_runs/{training_run_id}/checkpoints", { params: { path: { training_run_id: runId } }, ...init }),
      CheckpointsListResponseSchema,
      requestOptionsOf(options),
    );
  }

  /**
   * Lists one page of the user's checkpoints across all runs, newest first.
   *
   * @throws {InvalidArgumentError} when `limit`/`offset` are out of range (nothing is sent).
   * @example
   * ```ts
   * const page = await rest.listUserCheckpoints({ limit: 50 });
   * console.log(`${page.checkpoints.length} of ${page.cursor?.total_count}`);
   * ```
   */
  async listUserCheckpoints(options: PageOptions = {}): Promise<CheckpointsPage> {
    const t = this.transport;
    const { limit, offset } = pageQuery(options);
    const query = { ...(limit === undefined ? {} : { limit }), ...(offset === undefined ? {} : { offset }) };
    return t.call(
      "list_user_checkpoints",
      (init) => t.api.GET("/api/v1/checkpoints", { params: { query }, ...init }),
      CheckpointsListResponseSchema,
      requestOptionsOf(options),
    );
  }

  /**
   * Iterates over all of the user's checkpoints, newest first, fetching pages lazily. Stops at
   * `cursor.total_count` or on a short or empty page.
   *
   * @example
   * ```ts
   * let total = 0;
   * for await (const c of rest.iterUserCheckpoints({ pageSize: 200 })) total += c.size_bytes ?? 0;
   * console.log(`${total} bytes stored`);
   * ```
   */
  iterUserCheckpoints(options: IterOptions = {}): AsyncIterable<CheckpointInfo> {
    const { pageSize, onPage, ...rest } = options;
    return paginate(pageSize, onPage, async (limit, offset) => {
      const page = await this.listUserCheckpoints({ ...rest, limit, offset });
      return { items: page.checkpoints, totalCount: page.cursor?.total_count ?? null };
    });
  }

  /**
   * Gets the base model and LoRA configuration a checkpoint was trained with.
   *
   * @throws {InvalidTinkerPathError} when `tinkerPath` is malformed (nothing is sent).
   * @throws {NotFoundError} when the checkpoint does not exist; the message names the path ("expired or deleted?").
   * @example
   * ```ts
   * const info = await rest.getWeightsInfoByTinkerPath("tinker://sess-0:train:0/weights/ckpt-1");
   * if (info.is_lora && info.lora_rank !== 16) throw new Error("rank mismatch");
   * ```
   */
  async getWeightsInfoByTinkerPath(tinkerPath: string, options: RequestOptions = {}): Promise<WeightsInfo> {
    parseTinkerPath(tinkerPath);
    const t = this.transport;
    return withCheckpointNotFound(tinkerPath, () =>
      t.call(
        "weights_info",
        (init) => t.api.POST("/api/v1/weights_info", { body: { tinker_path: tinkerPath }, ...init }),
        WeightsInfoResponseSchema,
        requestOptionsOf(options),
      ),
    );
  }

  /**
   * Gets a signed, expiring URL of a checkpoint's archive (a tar of its files). Handles both answers of the
   * service: `302` with `Location`/`Expires` (the redirect is never followed, so the API key never reaches the
   * download host; a missing `Expires` means 15 minutes) and `200 {url, expires}`. While the service answers
   * 503 "still being generated", polls again after `Retry-After` (else 30 s), at most `archiveMaxAttempts`
   * times (default 6), calling `onArchivePending(attempt)` each time. Each attempt goes through the transport's
   * retry policy first (connection errors, 429 and 5xx, 503 included, up to `maxRetries`).
   *
   * @param checkpointId - `"weights/<name>"` or `"sampler_weights/<name>"`.
   * @throws {NotFoundError} when the checkpoint does not exist; the message names the path ("expired or deleted?").
   * @throws {PermissionDeniedError} when the API key may not read the checkpoint.
   * @throws {InternalServerError} (status 503) when the archive is still not ready after the last attempt.
   * @throws {ResponseValidationError} when a 302 has no `Location` or a 200 body is malformed.
   * @example
   * ```ts
   * const { url, expires } = await rest.getCheckpointArchiveUrl("sess-0:train:0", "weights/ckpt-1", {
   *   onArchivePending: (n) => console.log(`archive not ready yet (attempt ${n})`),
   * });
   * ```
   */
  async getCheckpointArchiveUrl(runId: string, checkpointId: string, options: ArchiveUrlOptions = {}): Promise<CheckpointArchiveUrl> {
    return this.#archiveUrl(checkpointRef(runId, checkpointId), options);
  }

  /**
   * Like {@link RestClient.getCheckpointArchiveUrl}, addressed by tinker path.
   *
   * @throws {InvalidTinkerPathError} when `tinkerPath` is malformed (nothing is sent).
   * @throws {NotFoundError} when the checkpoint does not exist; the message names the path ("expired or deleted?").
   * @example
   * ```ts
   * const { url } = await rest.getCheckpointArchiveUrlFromTinkerPath("tinker://sess-0:train:0/weights/ckpt-1");
   * ```
   */
  async getCheckpointArchiveUrlFromTinkerPath(tinkerPath: string, options: ArchiveUrlOptions = {}): Promise<CheckpointArchiveUrl> {
    return this.#archiveUrl(refFromPath(tinkerPath), options);
  }

  /**
   * Deletes a checkpoint. Permanent.
   *
   * @param checkpointId - `"weights/<name>"` or `"sampler_weights/<name>"`.
   * @throws {NotFoundError} when the checkpoint does not exist; the message names the path ("expired or deleted?"); after an attempt whose answer was lost, a 404 is that attempt's work: success.
   * @example
   * ```ts
   * await rest.deleteCheckpoint("sess-0:train:0", "weights/ckpt-1");
   * ```
   */
  async deleteCheckpoint(runId: string, checkpointId: string, options: RequestOptions = {}): Promise<void> {
    await this.#checkpointAction("delete_checkpoint", "DELETE", "", checkpointRef(runId, checkpointId), options);
  }

  /**
   * Deletes the checkpoint at a tinker path. Permanent.
   *
   * @throws {InvalidTinkerPathError} when `tinkerPath` is malformed (nothing is sent).
   * @throws {NotFoundError} when the checkpoint does not exist; the message names the path ("expired or deleted?"); after an attempt whose answer was lost, a 404 is that attempt's work: success.
   * @example
   * ```ts
   * await rest.deleteCheckpointFromTinkerPath("tinker://sess-0:train:0/weights/ckpt-1");
   * ```
   */
  async deleteCheckpointFromTinkerPath(tinkerPath: string, options: RequestOptions = {}): Promise<void> {
    await this.#checkpointAction("delete_checkpoint", "DELETE", "", refFromPath(tinkerPath), options);
  }

  /**
   * Makes a checkpoint public (readable by other users with its path).
   *
   * @throws {InvalidTinkerPathError} when `tinkerPath` is malformed (nothing is sent).
   * @throws {ConflictError} when it is already public (never retried; after an attempt whose answer was lost it is that attempt's work: success).
   * @throws {NotFoundError} when the checkpoint does not exist or is not owned by this key.
   * @example
   * ```ts
   * await rest.publishCheckpointFromTinkerPath("tinker://sess-0:train:0/sampler_weights/final");
   * ```
   */
  async publishCheckpointFromTinkerPath(tinkerPath: string, options: RequestOptions = {}): Promise<void> {
    await this.#checkpointAction("publish_checkpoint", "POST", "/publish", refFromPath(tinkerPath), options);
  }

  /**
   * Makes a public checkpoint private again.
   *
   * @throws {InvalidTinkerPathError} when `tinkerPath` is malformed (nothing is sent).
   * @throws {ConflictError} when it is already private (never retried; after an attempt whose answer was lost it is that attempt's work: success).
   * @throws {NotFoundError} when the checkpoint does not exist or is not owned by this key.
   * @example
   * ```ts
   * await rest.unpublishCheckpointFromTinkerPath("tinker://sess-0:train:0/sampler_weights/final");
   * ```
   */
  async unpublishCheckpointFromTinkerPath(tinkerPath: string, options: RequestOptions = {}): Promise<void> {
    await this.#checkpointAction("unpublish_checkpoint", "DELETE", "/publish", refFromPath(tinkerPath), options);
  }

  /**
   * Sets a checkpoint's time to live (seconds from now), or removes its expiry with `null`. Checked before
   * sending: a TTL must be a whole number ≥ 3600 (the service minimum).
   *
   * @throws {InvalidTinkerPathError} when `tinkerPath` is malformed (nothing is sent).
   * @throws {InvalidTtlError} when `ttlSeconds` is not `null` or a whole number ≥ 3600 (nothing is sent).
   * @throws {NotFoundError} when the checkpoint does not exist; the message names the path ("expired or deleted?").
   * @example
   * ```ts
   * await rest.setCheckpointTtlFromTinkerPath("tinker://sess-0:train:0/weights/ckpt-1", 7 * 24 * 3600);
   * await rest.setCheckpointTtlFromTinkerPath("tinker://sess-0:train:0/weights/final", null); // never expires
   * ```
   */
  async setCheckpointTtlFromTinkerPath(tinkerPath: string, ttlSeconds: number | null, options: RequestOptions = {}): Promise<void> {
    const ref = refFromPath(tinkerPath);
    if (ttlSeconds === undefined) throw new InvalidTtlError(ttlSeconds, "pass a whole number of seconds, or null to remove the expiry");
    validateTtlSeconds(ttlSeconds);
    await this.#checkpointAction("set_checkpoint_ttl", "PUT", "/ttl", ref, options, { ttl_seconds: ttlSeconds });
  }

  // ---------------------------------------------------------------------------------------- sessions

  /**
   * Gets the training runs and samplers of a session.
   *
   * @throws {NotFoundError} when the session does not exist.
   * @example
   * ```ts
   * const s = await rest.getSession("sess-0");
   * console.log(s.training_run_ids, s.sampler_ids);
   * ```
   */
  async getSession(sessionId: string, options: AccessScopeOptions = {}): Promise<SessionInfo> {
    checkRunId(sessionId, "session id");
    const t = this.transport;
    const query = options.accessScope === undefined ? {} : { access_scope: options.accessScope };
    return t.call(
      "get_session",
      (init) => t.api.GET("/api/v1/sessions/{session_id}", { params: { path: { session_id: sessionId }, query }, ...init }),
      GetSessionResponseSchema,
      requestOptionsOf(options),
    );
  }

  /**
   * Describes a sampler (a sampling session): its base model and the checkpoint it samples from.
   * @throws {NotFoundError} when the sampler does not exist.
   * @example
   * ```ts
   * const { base_model, model_path } = await rest.getSampler(sampler.samplingSessionId);
   * ```
   */
  getSampler(samplerId: string, options: RequestOptions = {}): Promise<GetSamplerResponse> {
    return fetchSampler(this.transport, samplerId, options);
  }

  /**
   * Lists one page of the user's session ids.
   *
   * @throws {InvalidArgumentError} when `limit`/`offset` are out of range (nothing is sent).
   * @example
   * ```ts
   * const { sessions } = await rest.listSessions({ limit: 20 });
   * ```
   */
  async listSessions(options: PageOptions & AccessScopeOptions = {}): Promise<SessionsPage> {
    const t = this.transport;
    const query = pageQuery(options);
    return t.call(
      "list_sessions",
      (init) => t.api.GET("/api/v1/sessions", { params: { query }, ...init }),
      ListSessionsResponseSchema,
      requestOptionsOf(options),
    );
  }

  // ---------------------------------------------------------------------------------------- private

  async #checkpointAction(
    op: string,
    method: "DELETE" | "POST" | "PUT",
    suffix: "" | "/publish" | "/ttl",
    ref: CheckpointRef,
    options: RequestOptions,
    body?: { ttl_seconds: number | null },
  ): Promise<void> {
    const t = this.transport;
    const params = { path: { training_run_id: ref.runId, checkpoint_kind: ref.kind, checkpoint_name: ref.name } };
    const res = await withCheckpointNotFound(ref.tinkerPath, () =>
      t.callRaw(
        op,
        (init) => {
          if (suffix === "") return t.api.DELETE(CHECKPOINT_ROUTE, { params, ...init });
          if (suffix === "/publish") {
            return method === "POST"
              ? t.api.POST(`${CHECKPOINT_ROUTE}/publish`, { params, ...init })
              : t.api.DELETE(`${CHECKPOINT_ROUTE}/publish`, { params, ...init });
          }
          return t.api.PUT(`${CHECKPOINT_ROUTE}/ttl`, { params, body: body ?? { ttl_seconds: null }, ...init });
        },
        // An earlier attempt whose answer was lost may have done the work: the retry then meets its result.
        { ...requestOptionsOf(options), okAfterLostAnswer: suffix === "" ? [404] : suffix === "/publish" ? [409] : [] },
      ),
    );
    await res.body?.cancel().catch(() => undefined);
    if (res.status === 404 || res.status === 409) {
      const state = res.status === 404 ? "already deleted (not found)" : method === "POST" ? "already public" : "already private";
      t.debug(
        `tinker-ts: ${op} ${ref.tinkerPath}: ${state} on a retry after a lost answer; the earlier attempt did it, so this is success.`,
      );
    }
  }

  async #archiveUrl(ref: CheckpointRef, options: ArchiveUrlOptions): Promise<CheckpointArchiveUrl> {
    const t = this.transport;
    const maxAttempts = options.archiveMaxAttempts ?? this.#options.archiveMaxAttempts ?? DEFAULT_ARCHIVE_MAX_ATTEMPTS;
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
      throw new InvalidArgumentError(`archiveMaxAttempts must be a whole number ≥ 1, got ${String(maxAttempts)}.`);
    }
    const fixedDelay = options.archiveRetryDelayMs ?? this.#options.archiveRetryDelayMs;
    const params = { path: { training_run_id: ref.runId, checkpoint_kind: ref.kind, checkpoint_name: ref.name } };
    // Transient faults (connection errors, 429, 5xx) are retried by the transport as everywhere else; this loop
    // only adds the bounded wait for a 503 "archive still being generated", which can last minutes.
    const call: CallOptions = { ...requestOptionsOf(options), headers: { Accept: "application/json" } };
    let pending = 0;
    for (;;) {
      // Read once, whatever the status: 302 (signed URL), 200 (JSON), 503 (still being generated) or a failure.
      const answer = await t.answer(
        "get_checkpoint_archive_url",
        (init) => t.api.GET(`${CHECKPOINT_ROUTE}/archive`, { params, ...init }),
        // 503 "still being generated" is not retried by the transport: this loop waits for it, bounded.
        { ...call, redirect: "manual", noRetryStatuses: [503] },
      );
      if (answer.status === 503) {
        // The archive is still being generated; poll again (bounded), separately from transient faults.
        pending++;
        if (pending >= maxAttempts) {
          throw rewordAPIError(
            t.errorFor(answer),
            `The archive of ${ref.tinkerPath} is still being generated after ${pending} attempts. Try again later (large checkpoints can take several minutes).`,
          );
        }
        options.onArchivePending?.(pending);
        const delay = fixedDelay ?? retryAfterMs(answer.headers) ?? backoffMs(pending - 1, ARCHIVE_WAIT);
        await this.#pause(delay, options.signal);
        continue;
      }
      if (answer.status !== 302 && (answer.status < 200 || answer.status >= 300)) {
        throw checkpointNotFound(ref.tinkerPath, t.errorFor(answer));
      }
      return readArchiveAnswer(answer, ref.tinkerPath, DEFAULT_ARCHIVE_URL_LIFETIME_MS);
    }
  }

  async #pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
    try {
      await this.#sleep(ms, signal);
    } catch (err) {
      if (signal?.aborted === true) throw new APIUserAbortError({ subject: "Waiting for the checkpoint archive", cause: signal.reason });
      throw err;
    }
  }
}
