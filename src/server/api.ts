/**
 * Handlers of every operation in the OpenAPI spec, keyed by `operationId`. Requests reach them already
 * authenticated (owner known) and validated against the spec.
 *
 * Visibility rules: each API key is a user. A user sees their own sessions, runs and checkpoints. Another
 * user's private checkpoint or run answers 404 (its existence is not revealed). A public checkpoint can
 * be read by anyone with a valid key (`weights_info`, the archive, loading it into one's own model, and
 * the run through `access_scope=accessible`), but only its owner may delete, publish, unpublish or set a
 * TTL (others get 403 for a public checkpoint, 404 for a private one).
 *
 * @module
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import type { components } from "../../generated/schema.js";
import type { ArchiveService } from "./archive.js";
import type { ServerAuth } from "./auth.js";
import { countTrainingTokens, type AccountLedger } from "./account.js";
import type { FutureRegistry } from "./futures.js";
import type { CheckpointRecord, RunRecord, Store } from "./store.js";
import type { SupportedModel, TrainingHost } from "./training.js";
import { encodeForwardBackwardResult, PROTOBUF_MEDIA_TYPE } from "./proto.js";
import { encodeSampleResponse, type SamplingHost } from "./sampling.js";
import { HttpError, iso, parseTinkerPath, randomHex, tinkerPath, type CheckpointKind } from "./util.js";

type Schemas = components["schemas"];

/** What a handler answers: a status, an optional JSON body (or raw `bytes`, typed by a `content-type` header) and extra headers. */
export type Reply = { status: number; body?: unknown; bytes?: Uint8Array; headers?: Record<string, string> };

/** The request as a handler sees it. */
export type OpContext = {
  /** The caller (derived from the API key). */
  owner: string;
  /** Coerced query parameters declared by the operation. */
  query: Record<string, unknown>;
  /** Decoded path parameters. */
  params: Record<string, string>;
  /** The validated JSON body (undefined if none). */
  body: unknown;
  req: IncomingMessage;
  res: ServerResponse;
  /** Aborted when the client goes away. */
  signal: AbortSignal;
  /** `http://host:port` as the client addressed this server. */
  origin: string;
};

/** An operation handler. */
export type OperationHandler = (ctx: OpContext) => Reply | Promise<Reply>;

/** The queue state reported by pending futures. */
export type QueueState = "active" | "paused_capacity" | "paused_rate_limit";

/** Dependencies and settings of {@link createOperationHandlers}. */
export type ApiDeps = {
  store: Store;
  futures: FutureRegistry;
  training: TrainingHost;
  sampling: SamplingHost;
  archive: ArchiveService;
  clock: () => number;
  longPollMs: number;
  queueState: () => QueueState;
  archiveResponse: "redirect" | "json";
  minTtlSeconds: number;
  supportedModels: readonly SupportedModel[];
  /** Overrides of what `/api/v1/client/config` answers. */
  clientConfig?: Partial<Schemas["ClientConfigResponse"]> | undefined;
  /** Issues the JWTs of `POST /api/v1/auth/token`. */
  auth: ServerAuth;
  /** Audit log, billing usage, session projects and traces (`account.ts`). */
  account: AccountLedger;
};

/** The client configuration `/api/v1/client/config` answers (PROTOCOL §10.3). */
export type ClientConfig = Schemas["ClientConfigResponse"];

/** What `/api/v1/client/config` answers unless `startLocalServer({ clientConfig })` overrides it. */
export const DEFAULT_CLIENT_CONFIG = {
  pjwt_auth_enabled: false,
  credential_default_source: "api_key",
  use_pyqwest_transport: false,
  create_model_via_load_weights: false,
  parallel_fwdbwd_chunks: true,
  proto_compress_fwdbwd: false,
  fwdbwd_max_chunk_len: 1024,
  fwdbwd_max_chunk_bytes_count: 5_000_000,
  fwdbwd_dispatch_bytes_semaphore_size: 50_000_000,
  sample_no_retries: false,
  sample_enable_stuck_detection: true,
} as const satisfies Schemas["ClientConfigResponse"];

/** Result types a poll may ask for as protobuf (`Accept: application/x-protobuf`). */
const PROTOBUF_RESULTS: Record<string, (value: Record<string, unknown>) => Uint8Array> = {
  ForwardBackward: encodeForwardBackwardResult,
  Forward: encodeForwardBackwardResult,
  Sample: encodeSampleResponse,
};

const QUEUE_REASONS: Record<QueueState, string | undefined> = {
  active: undefined,
  paused_capacity: "Tinker backend is running short on capacity, please wait",
  paused_rate_limit: "concurrent training clients rate limit hit",
};

/** Formats a checkpoint for the wire. */
export function checkpointJson(rec: CheckpointRecord): Schemas["Checkpoint"] {
  return {
    checkpoint_id: `${rec.kind}/${rec.name}`,
    checkpoint_type: rec.kind === "weights" ? "training" : "sampler",
    time: iso(rec.created_at),
    tinker_path: tinkerPath(rec.training_run_id, rec.kind, rec.name),
    size_bytes: rec.size_bytes,
    public: rec.public,
    expires_at: rec.expires_at === null ? null : iso(rec.expires_at),
  };
}

function stringMetadata(meta: Record<string, unknown> | null): Record<string, string> | null {
  if (meta === null) return null;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(meta)) out[k] = typeof v === "string" ? v : JSON.stringify(v);
  return out;
}

function page<T>(items: T[], query: Record<string, unknown>, defaultLimit: number): { items: T[]; cursor: Schemas["Cursor"] } {
  const limit = (query.limit as number | undefined) ?? defaultLimit;
  const offset = (query.offset as number | undefined) ?? 0;
  return { items: items.slice(offset, offset + limit), cursor: { offset, limit, total_count: items.length } };
}

/** Builds the handler of every spec operation. */
export function createOperationHandlers(d: ApiDeps): Record<string, OperationHandler> {
  const { store, futures, training, sampling, archive } = d;

  /** Checkpoints of `run` that `owner` may see. */
  const visibleCheckpoints = (run: RunRecord, owner: string): CheckpointRecord[] =>
    store.checkpointsOf(run.training_run_id).filter((c) => run.owner === owner || c.owner === owner || c.public);

  const runVisible = (run: RunRecord, owner: string, scope: unknown): boolean =>
    run.owner === owner || (scope === "accessible" && visibleCheckpoints(run, owner).length > 0);

  const runJson = (run: RunRecord, owner: string): Schemas["TrainingRun"] => {
    const cps = visibleCheckpoints(run, owner);
    const lastOf = (kind: CheckpointKind): Schemas["Checkpoint"] | null => {
      const list = cps.filter((c) => c.kind === kind);
      const last = list[list.length - 1];
      return last ? checkpointJson(last) : null;
    };
    return {
      training_run_id: run.training_run_id,
      base_model: run.base_model,
      model_owner: run.owner,
      is_lora: true,
      corrupted: false,
      lora_rank: run.lora.rank,
      last_request_time: iso(run.last_request_time),
      last_checkpoint: lastOf("weights"),
      last_sampler_checkpoint: lastOf("sampler_weights"),
      user_metadata: stringMetadata(run.user_metadata),
    };
  };

  /** Resolves a checkpoint route's target for reading. */
  const readableCheckpoint = (ctx: OpContext): CheckpointRecord => {
    const { training_run_id: runId, checkpoint_kind: kind, checkpoint_name: name } = ctx.params as Record<string, string>;
    const rec = store.checkpoint(runId!, kind as CheckpointKind, name!);
    if (!rec || (rec.owner !== ctx.owner && !rec.public)) {
      throw new HttpError(404, `checkpoint ${kind}/${name} not found in training run ${runId}`);
    }
    return rec;
  };

  /** Resolves a checkpoint route's target for an owner-only change. */
  const ownedCheckpoint = (ctx: OpContext, action: string): CheckpointRecord => {
    const rec = readableCheckpoint(ctx);
    if (rec.owner !== ctx.owner) {
      throw new HttpError(403, `only the owner of ${tinkerPath(rec.training_run_id, rec.kind, rec.name)} may ${action} it`);
    }
    return rec;
  };

  return {
    ...d.account.handlers(),
    getClientConfig: () => ({
      status: 200,
      body: { ...DEFAULT_CLIENT_CONFIG, ...d.clientConfig } satisfies Schemas["ClientConfigResponse"],
    }),

    authToken: (ctx) => ({ status: 200, body: { jwt: d.auth.issue(ctx.owner) } satisfies Schemas["AuthTokenResponse"] }),

    getDynamicClientConfig: () => ({ status: 200, body: { refresh_interval_sec: 300 } satisfies Schemas["DynamicConfigResponse"] }),

    createSession: async (ctx) => {
      const body = ctx.body as Schemas["CreateSessionRequest"];
      const sessionId = `sess-${randomHex(8)}`;
      await store.addSession({
        session_id: sessionId,
        owner: ctx.owner,
        created_at: d.clock(),
        tags: [...new Set(body.tags)],
        user_metadata: body.user_metadata,
        project_id: body.project_id ?? null,
        sdk_version: body.sdk_version,
        sampler_ids: [],
      });
      return { status: 200, body: { session_id: sessionId, type: "create_session" } satisfies Schemas["CreateSessionResponse"] };
    },

    sessionHeartbeat: (ctx) => {
      const body = ctx.body as Schemas["SessionHeartbeatRequest"];
      const session = store.session(body.session_id);
      if (!session || session.owner !== ctx.owner) {
        throw new HttpError(404, `session ${body.session_id} not found`, { field: "body.session_id" });
      }
      return { status: 200, body: { type: "session_heartbeat" } satisfies Schemas["SessionHeartbeatResponse"] };
    },

    sendTelemetry: () => ({ status: 200, body: { status: "accepted" } satisfies Schemas["TelemetryResponse"] }),

    getServerCapabilities: () => ({
      status: 200,
      body: { supported_models: d.supportedModels.map((m) => ({ ...m })) } satisfies Schemas["GetServerCapabilitiesResponse"],
    }),

    healthCheck: () => ({ status: 200, body: { status: "ok" } satisfies Schemas["HealthResponse"] }),

    createModel: (ctx) => ({ status: 200, body: training.submitCreate(ctx.owner, ctx.body as Schemas["CreateModelRequest"]) }),

    getModelInfo: (ctx) => ({ status: 200, body: training.getInfo(ctx.owner, (ctx.body as Schemas["GetInfoRequest"]).model_id) }),

    unloadModel: (ctx) => ({ status: 200, body: training.submitUnload(ctx.owner, ctx.body as Schemas["UnloadModelRequest"]) }),

    forwardBackward: (ctx) => {
      const body = ctx.body as Schemas["ForwardBackwardRequest"];
      const reply = { status: 200, body: training.submitForwardBackward(ctx.owner, body) };
      d.account.recordTraining(ctx.owner, body.model_id, countTrainingTokens(body));
      return reply;
    },

    optimStep: (ctx) => ({ status: 200, body: training.submitOptimStep(ctx.owner, ctx.body as Schemas["OptimStepRequest"]) }),

    saveWeights: (ctx) => ({ status: 200, body: training.submitSaveWeights(ctx.owner, ctx.body as Schemas["SaveWeightsRequest"]) }),

    loadWeights: (ctx) => {
      const body = ctx.body as Schemas["LoadWeightsRequest"];
      if (body.model_id !== undefined && body.session_id !== undefined) {
        throw new HttpError(422, "body: model_id (with seq_id) and session_id (with model_seq_id) are mutually exclusive", {
          field: "body.session_id",
        });
      }
      if (body.model_id !== undefined) return { status: 200, body: training.submitLoadWeights(ctx.owner, body) };
      if (body.session_id !== undefined) return { status: 200, body: training.submitCreateViaLoad(ctx.owner, body) };
      throw new HttpError(422, "body.model_id: is required (or session_id with model_seq_id to create the model by loading)", {
        field: "body.model_id",
      });
    },

    saveWeightsForSampler: (ctx) => ({
      status: 200,
      body: training.submitSaveForSampler(ctx.owner, ctx.body as Schemas["SaveWeightsForSamplerRequest"]),
    }),

    createSamplingSession: async (ctx) => ({
      status: 200,
      body: await sampling.createSession(ctx.owner, ctx.body as Schemas["CreateSamplingSessionRequest"]),
    }),

    asample: (ctx) => ({ status: 200, body: sampling.submitSample(ctx.owner, ctx.body as Schemas["SampleRequest"]) }),

    getSampler: (ctx) => ({ status: 200, body: sampling.getSampler(ctx.owner, ctx.params.sampler_id!) }),

    retrieveFuture: async (ctx) => {
      const { request_id: requestId } = ctx.body as Schemas["FutureRetrieveRequest"];
      const found = futures.lookup(requestId, ctx.owner);
      if (found.kind === "unknown") throw new HttpError(404, `request ${requestId} not found`, { field: "body.request_id" });
      if (found.kind === "expired") throw new HttpError(410, "promise expired; resubmit the request");
      const future = found.future;
      await futures.wait(future, d.longPollMs, ctx.signal);
      const outcome = future.outcome;
      if (outcome === undefined) {
        const state = d.queueState();
        const body: Schemas["TryAgainResponse"] = { type: "try_again", request_id: requestId, queue_state: state };
        const reason = QUEUE_REASONS[state];
        if (reason !== undefined) body.queue_state_reason = reason;
        return { status: 200, body };
      }
      if (outcome.ok) {
        const accept = String(ctx.req.headers.accept ?? "");
        const encode = PROTOBUF_RESULTS[future.type];
        if (encode !== undefined && accept.includes(PROTOBUF_MEDIA_TYPE)) {
          return { status: 200, bytes: encode(outcome.value), headers: { "content-type": PROTOBUF_MEDIA_TYPE } };
        }
        return { status: 200, body: outcome.value };
      }
      return { status: 200, body: { error: outcome.error, category: outcome.category } satisfies Schemas["RequestFailedResponse"] };
    },

    getWeightsInfo: (ctx) => {
      const { tinker_path: path } = ctx.body as Schemas["WeightsInfoRequest"];
      const parsed = parseTinkerPath(path);
      if (typeof parsed === "string") throw new HttpError(400, `tinker_path ${parsed}`, { field: "body.tinker_path" });
      const rec = store.checkpoint(parsed.runId, parsed.kind, parsed.name);
      if (!rec || (rec.owner !== ctx.owner && !rec.public))
        throw new HttpError(404, `checkpoint ${path} not found`, { field: "body.tinker_path" });
      return {
        status: 200,
        body: {
          base_model: rec.base_model,
          is_lora: true,
          lora_rank: rec.lora.rank,
          train_unembed: rec.lora.train_unembed,
          train_mlp: rec.lora.train_mlp,
          train_attn: rec.lora.train_attn,
        } satisfies Schemas["WeightsInfoResponse"],
      };
    },

    listTrainingRuns: (ctx) => {
      const scope = ctx.query.access_scope ?? "owned";
      const projectId = ctx.query.project_id as string | undefined;
      const runs = store
        .runs()
        .filter((r) => runVisible(r, ctx.owner, scope))
        .filter((r) => projectId === undefined || (r.session_id !== null && store.session(r.session_id)?.project_id === projectId))
        .sort((a, b) => b.created_at - a.created_at || b.training_run_id.localeCompare(a.training_run_id));
      const { items, cursor } = page(runs, ctx.query, 20);
      return {
        status: 200,
        body: { training_runs: items.map((r) => runJson(r, ctx.owner)), cursor } satisfies Schemas["TrainingRunsResponse"],
      };
    },

    getTrainingRun: (ctx) => {
      const runId = ctx.params.training_run_id!;
      const run = store.run(runId);
      if (!run || !runVisible(run, ctx.owner, ctx.query.access_scope ?? "owned")) {
        throw new HttpError(404, `training run ${runId} not found`);
      }
      return { status: 200, body: runJson(run, ctx.owner) };
    },

    listCheckpoints: (ctx) => {
      const runId = ctx.params.training_run_id!;
      const run = store.run(runId);
      const visible = run ? visibleCheckpoints(run, ctx.owner) : [];
      if (!run || (run.owner !== ctx.owner && visible.length === 0)) throw new HttpError(404, `training run ${runId} not found`);
      return { status: 200, body: { checkpoints: visible.map(checkpointJson), cursor: null } satisfies Schemas["CheckpointsListResponse"] };
    },

    listUserCheckpoints: (ctx) => {
      const mine = store
        .allCheckpoints()
        .filter((c) => c.owner === ctx.owner)
        .reverse();
      const { items, cursor } = page(mine, ctx.query, 100);
      return { status: 200, body: { checkpoints: items.map(checkpointJson), cursor } satisfies Schemas["CheckpointsListResponse"] };
    },

    deleteCheckpoint: async (ctx) => {
      const rec = ownedCheckpoint(ctx, "delete");
      await store.deleteCheckpoint(rec);
      d.account.recordCheckpoint(ctx.owner, rec, "checkpoint_deleted");
      return { status: 204 };
    },

    getCheckpointArchiveUrl: (ctx) => {
      const rec = readableCheckpoint(ctx);
      if (!archive.requestReady(rec)) {
        throw new HttpError(503, "archive still being generated", { headers: { "retry-after": "1" } });
      }
      const { path, expiresMs } = archive.signedPath(rec);
      const url = `${ctx.origin}${path}`;
      if (d.archiveResponse === "json") {
        return { status: 200, body: { url, expires: iso(expiresMs) } satisfies Schemas["CheckpointArchiveUrlResponse"] };
      }
      return { status: 302, headers: { location: url, expires: new Date(expiresMs).toUTCString() } };
    },

    publishCheckpoint: async (ctx) => {
      const rec = ownedCheckpoint(ctx, "publish");
      if (rec.public) throw new HttpError(409, `checkpoint ${tinkerPath(rec.training_run_id, rec.kind, rec.name)} is already public`);
      await store.updateCheckpoint(rec, { public: true });
      d.account.recordCheckpoint(ctx.owner, rec, "checkpoint_published");
      return { status: 204 };
    },

    unpublishCheckpoint: async (ctx) => {
      const rec = ownedCheckpoint(ctx, "unpublish");
      if (!rec.public) throw new HttpError(409, `checkpoint ${tinkerPath(rec.training_run_id, rec.kind, rec.name)} is already private`);
      await store.updateCheckpoint(rec, { public: false });
      d.account.recordCheckpoint(ctx.owner, rec, "checkpoint_unpublished");
      return { status: 204 };
    },

    setCheckpointTtl: async (ctx) => {
      const rec = ownedCheckpoint(ctx, "set the TTL of");
      const { ttl_seconds: ttl } = ctx.body as Schemas["SetCheckpointTtlRequest"];
      if (ttl !== null && ttl <= 0)
        throw new HttpError(400, `ttl_seconds must be positive (or null to remove the expiry), got ${ttl}`, { field: "body.ttl_seconds" });
      if (ttl !== null && ttl < d.minTtlSeconds) {
        throw new HttpError(400, `ttl_seconds must be at least ${d.minTtlSeconds}, got ${ttl}`, { field: "body.ttl_seconds" });
      }
      await store.updateCheckpoint(rec, { expires_at: ttl === null ? null : d.clock() + ttl * 1000 });
      d.account.recordCheckpoint(ctx.owner, rec, "checkpoint_ttl_set");
      return { status: 204 };
    },

    listSessions: (ctx) => {
      const mine = store
        .sessions()
        .filter((s) => s.owner === ctx.owner)
        .sort((a, b) => b.created_at - a.created_at || b.session_id.localeCompare(a.session_id));
      const { items } = page(mine, ctx.query, 20);
      return { status: 200, body: { sessions: items.map((s) => s.session_id) } satisfies Schemas["ListSessionsResponse"] };
    },

    getSession: (ctx) => {
      const sessionId = ctx.params.session_id!;
      const session = store.session(sessionId);
      if (!session || session.owner !== ctx.owner) throw new HttpError(404, `session ${sessionId} not found`);
      const runs = store
        .runs()
        .filter((r) => r.session_id === sessionId)
        .sort((a, b) => (a.model_seq_id ?? 0) - (b.model_seq_id ?? 0))
        .map((r) => r.training_run_id);
      return {
        status: 200,
        body: { training_run_ids: runs, sampler_ids: [...session.sampler_ids] } satisfies Schemas["GetSessionResponse"],
      };
    },
  };
}
