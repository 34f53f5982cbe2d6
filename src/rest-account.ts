/**
 * The account side of {@link RestClient}: who is calling (`whoami`), and the admin calls on sessions, the audit
 * log and billing. `RestClient` extends {@link RestAccountClient}, so these are `rest.whoami()` etc.
 *
 * @module
 */
import { z } from "zod";
import type { components } from "./core/wire.js";
import { APIUserAbortError, InvalidArgumentError, RequestFailedError, TinkerError } from "./core/errors.js";
import type { RequestOptions } from "./core/options.js";
import { requestOptionsOf } from "./internal/request-options.js";
import { decodeJwtClaims } from "./internal/auth.js";
import { abortableSleep } from "./internal/sleep.js";
import type { Transport } from "./internal/transport.js";

/** The audit log of one day. */
export type AuditLogResponse = components["schemas"]["AuditLogResponse"];
/** Hourly billing usage events and the sessions they name. */
export type BillingUsageResponse = components["schemas"]["BillingUsageResponse"];

/** Options of {@link RestAccountClient.getAuditLog}. */
export interface AuditLogOptions extends RequestOptions {
  /** `all` (default) or only `checkpoints` events. */
  eventType?: "all" | "checkpoints";
  /** The UTC day, `YYYY-MM-DD` or a Date (default: today on the service). */
  day?: string | Date;
}

/** Options of {@link RestAccountClient.getBillingUsage}. */
export interface BillingUsageOptions extends RequestOptions {
  /** Inclusive window start, aligned to a UTC hour (RFC 3339 string or Date). */
  startingOn: string | Date;
  /** Exclusive window end, aligned to a UTC hour, at most 14 days after `startingOn`. */
  endingBefore: string | Date;
}

/** Options of {@link RestAccountClient.exportSessionTrace}. */
export interface ExportSessionTraceOptions extends RequestOptions {
  /** Delay between polls while the trace is being built (default 5000 ms, as the Python SDK). */
  pollIntervalMs?: number;
  /** Called once when the first poll says the trace is still being built. */
  onPending?: () => void;
}

const TraceExportSchema = z.object({
  status: z.enum(["pending", "ready", "failed"]),
  url: z.string().nullish(),
  error: z.string().nullish(),
});
const AuditLogSchema = z.object({
  entries: z.array(
    z.object({
      timestamp: z.string(),
      event: z.string(),
      model_id: z.string().nullish(),
      tinker_path: z.string().nullish(),
      purpose: z.string().nullish(),
    }),
  ),
}) as z.ZodType<AuditLogResponse>;
const BillingUsageSchema = z.object({
  data: z.array(z.looseObject({ bucket_start: z.string(), bucket_end: z.string(), event_info: z.looseObject({ type: z.string() }) })),
  sessions: z.record(z.string(), z.looseObject({})).optional(),
}) as unknown as z.ZodType<BillingUsageResponse>;

function checkId(value: string, what: string): void {
  if (typeof value !== "string" || value.trim() === "" || value.includes("/")) {
    throw new InvalidArgumentError(`Invalid ${what} ${JSON.stringify(value)}: it must be a non-empty string without "/".`);
  }
}

function dayOf(day: string | Date): string {
  if (day instanceof Date) {
    if (Number.isNaN(day.getTime())) throw new InvalidArgumentError("day is an invalid Date.");
    return day.toISOString().slice(0, 10);
  }
  if (!/^\d{4}-\d{2}-\d{2}$/.test(day) || Number.isNaN(Date.parse(`${day}T00:00:00Z`))) {
    throw new InvalidArgumentError(`day must be a date YYYY-MM-DD (UTC), got ${JSON.stringify(day)}.`);
  }
  return day;
}

function hourOf(value: string | Date, name: string): string {
  const ms = value instanceof Date ? value.getTime() : Date.parse(value);
  if (!Number.isFinite(ms))
    throw new InvalidArgumentError(`${name} must be an RFC 3339 date-time or a Date, got ${JSON.stringify(value)}.`);
  if (ms % 3_600_000 !== 0) throw new InvalidArgumentError(`${name} must be aligned to a UTC hour (e.g. 2026-01-15T10:00:00Z).`);
  return new Date(ms).toISOString();
}

/** Who the credential in use belongs to (decoded from its JWT, without a request). */
export interface WhoamiResponse {
  /** URN of the calling principal (the JWT's `sub`). */
  user_urn: string;
  /** Email of the calling user, when the principal is user-backed (`null` otherwise). */
  email: string | null;
}

/**
 * Base of {@link RestClient}: holds the transport and the account calls.
 *
 * @example
 * ```ts
 * const { user_urn, email } = await rest.whoami();
 * ```
 */
export class RestAccountClient {
  /** The transport every call goes through. */
  readonly transport: Transport;

  /**
   * Wraps `transport`. Sends nothing.
   *
   * @example
   * ```ts
   * import { Transport } from "./internal/transport.js";
   *
   * const account = new RestAccountClient(new Transport({ baseUrl: "http://127.0.0.1:8080", apiKey: "tml-local" }));
   * ```
   */
  constructor(transport: Transport) {
    this.transport = transport;
  }

  /**
   * Who the credential in use belongs to: `sub` (as `user_urn`) and `email` decoded from the JWT the client holds
   * in JWT mode, or from an API key that is itself a JWT. Makes no request once the JWT is held (the first call
   * in JWT mode may read the client config and exchange the credential).
   *
   * @throws {TinkerError} when there is no JWT: the service is not in JWT mode and the API key is a `tml-` key.
   * @example
   * ```ts
   * const me = await rest.whoami();
   * console.log(me.user_urn, me.email ?? "(no email)");
   * ```
   */
  async whoami(): Promise<WhoamiResponse> {
    const token = await this.transport.auth?.identityToken();
    if (token === undefined) {
      throw new TinkerError(
        "whoami reads the caller's identity from a JWT, and this client holds none: the service does not use JWT auth and the API key is not a JWT. The key's owner is shown in the service's console.",
      );
    }
    const claims = decodeJwtClaims(token);
    const sub = claims["sub"];
    if (typeof sub !== "string" || sub === "") throw new TinkerError("The JWT in use has no `sub` claim, so it names no principal.");
    const email = claims["email"];
    return { user_urn: sub, email: typeof email === "string" && email !== "" ? email : null };
  }

  /**
   * Moves a session (with its training runs and samplers) into a project. Clearing the project is not supported.
   *
   * @throws {InvalidArgumentError} for an empty id (nothing is sent).
   * @throws {NotFoundError} when the session does not exist; {@link PermissionDeniedError} without access to the project.
   * @example
   * ```ts
   * await rest.assignSessionProject("sess-0", "proj-research");
   * ```
   */
  async assignSessionProject(sessionId: string, projectId: string, options: RequestOptions = {}): Promise<void> {
    checkId(sessionId, "session id");
    if (typeof projectId !== "string" || projectId.trim() === "") throw new InvalidArgumentError("projectId must be a non-empty string.");
    const t = this.transport;
    const res = await t.callRaw(
      "assign_session_project",
      (init) =>
        t.api.PUT("/api/v1/sessions/{session_id}/project", {
          params: { path: { session_id: sessionId } },
          body: { project_id: projectId },
          ...init,
        }),
      requestOptionsOf(options),
    );
    await res.body?.cancel().catch(() => undefined);
  }

  /**
   * Exports a session's timeline as a Perfetto trace and returns its signed download URL, polling (every 5 s by
   * default) while the service builds it. Abort with `signal`.
   *
   * @throws {RequestFailedError} when the service reports the export failed.
   * @throws {APIUserAbortError} when `signal` aborts while waiting.
   * @example
   * ```ts
   * const url = await rest.exportSessionTrace("sess-0", { onPending: () => console.log("building trace…") });
   * // open it in https://ui.perfetto.dev
   * ```
   */
  async exportSessionTrace(sessionId: string, options: ExportSessionTraceOptions = {}): Promise<string> {
    checkId(sessionId, "session id");
    const interval = options.pollIntervalMs ?? 5_000;
    if (!(interval >= 0)) throw new InvalidArgumentError(`pollIntervalMs must be ≥ 0, got ${String(interval)}.`);
    const t = this.transport;
    let first = true;
    for (;;) {
      const res = await t.call(
        "export_session_trace",
        (init) => t.api.GET("/api/v1/sessions/{session_id}/trace_export", { params: { path: { session_id: sessionId } }, ...init }),
        TraceExportSchema,
        requestOptionsOf(options),
      );
      if (res.status === "ready") {
        if (typeof res.url !== "string" || res.url === "")
          throw new TinkerError(`The trace export of session ${sessionId} is ready but has no URL.`);
        return res.url;
      }
      if (res.status === "failed") {
        throw new RequestFailedError({
          requestId: sessionId,
          operation: "export_session_trace",
          category: "server",
          error: res.error ?? "trace export failed",
        });
      }
      if (first) options.onPending?.();
      first = false;
      try {
        await abortableSleep(interval, options.signal);
      } catch (cause) {
        throw new APIUserAbortError({ subject: `Waiting for the trace export of session ${sessionId}`, cause });
      }
    }
  }

  /**
   * The audit log of one UTC day (default today), sorted by time. Admin only on the service.
   *
   * @throws {InvalidArgumentError} for a malformed `day` (nothing is sent).
   * @example
   * ```ts
   * const { entries } = await rest.getAuditLog({ eventType: "checkpoints", day: "2026-01-15" });
   * for (const e of entries) console.log(e.timestamp, e.event, e.tinker_path);
   * ```
   */
  async getAuditLog(options: AuditLogOptions = {}): Promise<AuditLogResponse> {
    const eventType = options.eventType ?? "all";
    if (eventType !== "all" && eventType !== "checkpoints")
      throw new InvalidArgumentError(`eventType must be "all" or "checkpoints", got ${JSON.stringify(eventType)}.`);
    const query = { event_type: eventType, ...(options.day === undefined ? {} : { day: dayOf(options.day) }) };
    const t = this.transport;
    return t.call(
      "get_audit_log",
      (init) => t.api.GET("/api/v1/audit", { params: { query }, ...init }),
      AuditLogSchema,
      requestOptionsOf(options),
    );
  }

  /**
   * Hourly billing usage (training tokens, sampling tokens, checkpoints, storage) in a window of at most 14 days.
   *
   * @throws {InvalidArgumentError} when a bound is not a date or not on a UTC hour (nothing is sent).
   * @example
   * ```ts
   * const usage = await rest.getBillingUsage({ startingOn: "2026-01-15T00:00:00Z", endingBefore: "2026-01-16T00:00:00Z" });
   * const trained = usage.data.filter((e) => e.event_info.type === "training").reduce((n, e) => n + (e.event_info.token_count ?? 0), 0);
   * ```
   */
  async getBillingUsage(options: BillingUsageOptions): Promise<BillingUsageResponse> {
    const query = { starting_on: hourOf(options.startingOn, "startingOn"), ending_before: hourOf(options.endingBefore, "endingBefore") };
    const t = this.transport;
    return t.call(
      "get_billing_usage",
      (init) => t.api.GET("/api/v1/billing/usage/events", { params: { query }, ...init }),
      BillingUsageSchema,
      requestOptionsOf(options),
    );
  }
}
