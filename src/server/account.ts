/**
 * The account routes of the local server (PROTOCOL §3 rows 28, 29, 35, 36): a session's project, its trace
 * export, the audit log and billing usage, all from what the server saw.
 *
 * - The audit log lists the checkpoints in the store (`checkpoint_saved` at their creation time) and the
 *   checkpoint changes recorded since start (`checkpoint_deleted`, `checkpoint_published`,
 *   `checkpoint_unpublished`, `checkpoint_ttl_set`), for one UTC day.
 * - Billing usage counts the tokens of every forward/forward_backward request in hourly buckets per session
 *   (`training` events) and the checkpoints saved (`checkpoint` events).
 * - A trace export is `pending` on the first poll and `ready` on the next, with a `data:` URL holding a Chrome /
 *   Perfetto JSON trace of the session's runs and checkpoints.
 *
 * @module
 */
import type { components } from "../../generated/schema.js";
import type { OpContext, OperationHandler } from "./api.js";
import type { CheckpointRecord, Store } from "./store.js";
import { HttpError, iso, tinkerPath } from "./util.js";

type Schemas = components["schemas"];

const HOUR_MS = 3_600_000;
const MAX_WINDOW_MS = 14 * 24 * HOUR_MS;

/** One recorded event of the audit log. */
interface AuditEvent {
  owner: string;
  time: number;
  event: string;
  model_id: string;
  tinker_path: string;
  purpose: string | null;
}

/**
 * What the account routes record while the server runs, and their handlers.
 *
 * @example
 * ```ts
 * const account = new AccountLedger(store, Date.now);
 * account.recordTraining("user-1", "sess-1:train:0", 4096);
 * ```
 */
export class AccountLedger {
  readonly #store: Store;
  readonly #clock: () => number;
  readonly #events: AuditEvent[] = [];
  /** `owner\nsession\nbase model\nhour start` → tokens. */
  readonly #tokens = new Map<string, number>();
  readonly #traces = new Set<string>();

  /** Records nothing until told. */
  constructor(store: Store, clock: () => number) {
    this.#store = store;
    this.#clock = clock;
  }

  /** Counts `tokens` trained on `modelId` by `owner` now. */
  recordTraining(owner: string, modelId: string, tokens: number): void {
    const run = this.#store.run(modelId);
    const hour = Math.floor(this.#clock() / HOUR_MS) * HOUR_MS;
    const key = [owner, run?.session_id ?? "", run?.base_model ?? "", String(hour)].join("\n");
    this.#tokens.set(key, (this.#tokens.get(key) ?? 0) + tokens);
  }

  /** Records a change to a checkpoint (delete, publish, unpublish, TTL). */
  recordCheckpoint(owner: string, rec: CheckpointRecord, event: string): void {
    this.#events.push({
      owner,
      time: this.#clock(),
      event,
      model_id: rec.training_run_id,
      tinker_path: tinkerPath(rec.training_run_id, rec.kind, rec.name),
      purpose: rec.kind === "weights" ? "training" : "sampler",
    });
  }

  /** The handlers of the four account operations. */
  handlers(): Record<string, OperationHandler> {
    return {
      assignSessionProject: async (ctx) => {
        const session = this.#ownSession(ctx);
        const { project_id: projectId } = ctx.body as Schemas["AssignSessionProjectRequest"];
        if (projectId.trim() === "") throw new HttpError(400, "project_id must not be empty", { field: "body.project_id" });
        await this.#store.addSession({ ...session, project_id: projectId });
        return { status: 204 };
      },

      exportSessionTrace: (ctx) => {
        const session = this.#ownSession(ctx);
        const key = `${ctx.owner}\n${session.session_id}`;
        if (!this.#traces.has(key)) {
          this.#traces.add(key);
          return { status: 200, body: { status: "pending" } satisfies Schemas["SessionTraceExportResponse"] };
        }
        const trace = this.#trace(session.session_id);
        const url = `data:application/json;base64,${Buffer.from(JSON.stringify(trace)).toString("base64")}`;
        return { status: 200, body: { status: "ready", url } satisfies Schemas["SessionTraceExportResponse"] };
      },

      getAuditLog: (ctx) => {
        const day = (ctx.query.day as string | undefined) ?? iso(this.#clock()).slice(0, 10);
        const start = Date.parse(`${day}T00:00:00Z`);
        if (!Number.isFinite(start))
          throw new HttpError(400, `day must be a date YYYY-MM-DD, got ${JSON.stringify(day)}`, { field: "query.day" });
        const end = start + 24 * HOUR_MS;
        const saved: AuditEvent[] = this.#store
          .allCheckpoints()
          .filter((c) => c.owner === ctx.owner)
          .map((c) => ({
            owner: c.owner,
            time: c.created_at,
            event: "checkpoint_saved",
            model_id: c.training_run_id,
            tinker_path: tinkerPath(c.training_run_id, c.kind, c.name),
            purpose: c.kind === "weights" ? "training" : "sampler",
          }));
        const entries = [...saved, ...this.#events.filter((e) => e.owner === ctx.owner)]
          .filter((e) => e.time >= start && e.time < end)
          .filter((e) => ctx.query.event_type !== "checkpoints" || e.event.startsWith("checkpoint_"))
          .sort((a, b) => a.time - b.time)
          .map((e): Schemas["AuditLogEntry"] => ({
            timestamp: iso(e.time),
            event: e.event,
            model_id: e.model_id,
            tinker_path: e.tinker_path,
            purpose: e.purpose,
          }));
        return { status: 200, body: { entries } satisfies Schemas["AuditLogResponse"] };
      },

      getBillingUsage: (ctx) => {
        const from = parseHour(ctx.query.starting_on, "starting_on");
        const to = parseHour(ctx.query.ending_before, "ending_before");
        if (to <= from) throw new HttpError(400, "ending_before must be after starting_on", { field: "query.ending_before" });
        if (to - from > MAX_WINDOW_MS) throw new HttpError(400, "the window must be at most 14 days", { field: "query.ending_before" });
        if (from > this.#clock()) throw new HttpError(400, "the window must not start in the future", { field: "query.starting_on" });
        const data: Schemas["BillingUsageEvent"][] = [];
        const sessions: Record<string, Schemas["BillingUsageSession"]> = {};
        const envelope = (hour: number, sessionId: string, baseModel: string | null) => {
          const session = sessionId === "" ? undefined : this.#store.session(sessionId);
          if (session) sessions[sessionId] = { user_metadata: stringMap(session.user_metadata) };
          return {
            bucket_start: iso(hour),
            bucket_end: iso(hour + HOUR_MS),
            base_model: baseModel,
            user_id: ctx.owner,
            session_id: sessionId === "" ? null : sessionId,
            project_id: session?.project_id ?? null,
          };
        };
        for (const [key, tokens] of this.#tokens) {
          const [owner, sessionId, baseModel, hourText] = key.split("\n") as [string, string, string, string];
          const hour = Number(hourText);
          if (owner !== ctx.owner || hour < from || hour >= to) continue;
          data.push({
            ...envelope(hour, sessionId, baseModel === "" ? null : baseModel),
            event_info: { type: "training", token_count: tokens },
          });
        }
        const saves = new Map<string, { hour: number; sessionId: string; baseModel: string; count: number }>();
        for (const c of this.#store.allCheckpoints()) {
          const hour = Math.floor(c.created_at / HOUR_MS) * HOUR_MS;
          if (c.owner !== ctx.owner || hour < from || hour >= to) continue;
          const sessionId = this.#store.run(c.training_run_id)?.session_id ?? "";
          const key = `${hour}\n${sessionId}\n${c.base_model}`;
          const prev = saves.get(key) ?? { hour, sessionId, baseModel: c.base_model, count: 0 };
          prev.count++;
          saves.set(key, prev);
        }
        for (const s of saves.values())
          data.push({ ...envelope(s.hour, s.sessionId, s.baseModel), event_info: { type: "checkpoint", count: s.count } });
        data.sort(
          (a, b) => a.bucket_start.localeCompare(b.bucket_start) || (b.event_info.token_count ?? 0) - (a.event_info.token_count ?? 0),
        );
        return { status: 200, body: { data, sessions } satisfies Schemas["BillingUsageResponse"] };
      },
    };
  }

  #ownSession(ctx: OpContext) {
    const sessionId = ctx.params.session_id!;
    const session = this.#store.session(sessionId);
    if (!session || session.owner !== ctx.owner) throw new HttpError(404, `session ${sessionId} not found`);
    return session;
  }

  /** A Chrome/Perfetto JSON trace: one slice per run (creation to last request), an instant per checkpoint. */
  #trace(sessionId: string): { traceEvents: Record<string, unknown>[] } {
    const runs = this.#store.runs().filter((r) => r.session_id === sessionId);
    const traceEvents: Record<string, unknown>[] = [];
    runs.forEach((run, tid) => {
      traceEvents.push({
        name: run.training_run_id,
        ph: "X",
        ts: run.created_at * 1000,
        dur: Math.max(1, run.last_request_time - run.created_at) * 1000,
        pid: 1,
        tid,
      });
      for (const c of this.#store.checkpointsOf(run.training_run_id)) {
        traceEvents.push({ name: `save ${c.kind}/${c.name}`, ph: "i", s: "t", ts: c.created_at * 1000, pid: 1, tid });
      }
    });
    return { traceEvents };
  }
}

function parseHour(value: unknown, field: string): number {
  const ms = typeof value === "string" ? Date.parse(value) : Number.NaN;
  if (!Number.isFinite(ms))
    throw new HttpError(400, `${field} must be an RFC 3339 date-time, got ${JSON.stringify(value)}`, { field: `query.${field}` });
  if (ms % HOUR_MS !== 0) throw new HttpError(400, `${field} must be aligned to a UTC hour`, { field: `query.${field}` });
  return ms;
}

function stringMap(meta: Record<string, unknown>): Record<string, string> | null {
  const entries = Object.entries(meta);
  if (entries.length === 0) return null;
  return Object.fromEntries(entries.map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]));
}

/**
 * Tokens in a forward/forward_backward request body (its decoded JSON shape): every token of every chunk.
 *
 * @example
 * ```ts
 * countTrainingTokens({ forward_backward_input: { data: [{ model_input: { chunks: [{ tokens: [1, 2, 3] }] } }] } }); // 3
 * ```
 */
export function countTrainingTokens(body: unknown): number {
  const data = (body as { forward_backward_input?: { data?: unknown } } | undefined)?.forward_backward_input?.data;
  if (!Array.isArray(data)) return 0;
  let n = 0;
  for (const datum of data) {
    const chunks = (datum as { model_input?: { chunks?: unknown } } | undefined)?.model_input?.chunks;
    if (!Array.isArray(chunks)) continue;
    for (const chunk of chunks) {
      const tokens = (chunk as { tokens?: unknown } | undefined)?.tokens;
      if (Array.isArray(tokens)) n += tokens.length;
    }
  }
  return n;
}
