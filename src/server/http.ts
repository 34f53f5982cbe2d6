/**
 * The request pipeline of the local server: read and record the request, apply injected faults,
 * authenticate, route (spec operations, admin routes, signed archive downloads), validate against the
 * spec, dispatch, and answer JSON with an `x-request-id` header.
 *
 * `forward_backward` also takes a protobuf body (`Content-Type: application/x-protobuf`, optionally
 * `Content-Encoding: zstd`): it is decoded into the JSON request shape and validated like a JSON body. A handler
 * may answer raw bytes (`Reply.bytes`, e.g. a protobuf `ForwardBackwardOutput`).
 *
 * Error answers are always JSON `{"detail": "...", "field"?: "body.x.y"}`: 400 for an unparseable body (also a
 * malformed protobuf one, naming what is wrong), a body nested too deep or a bad `seq_id` (`guards.ts`), 401 for
 * a missing/unknown `X-API-Key`, 403 for an admin route without the server's own key, 404 for an unknown route or
 * an invisible resource, 405 for a known path with the wrong method, 413 for a body over 64 MiB, 415 for a body
 * that is not JSON (except protobuf where `guards.ts` allows it), 422 for a schema violation. Mutating requests
 * with `X-Idempotency-Key` replay their first answer (`idempotency.ts`).
 *
 * @module
 */

import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { z } from "zod";
import type { OpContext, OperationHandler, Reply } from "./api.js";
import type { ArchiveService } from "./archive.js";
import type { ServerAuth } from "./auth.js";
import { faultRuleSchema, type FaultInjector } from "./faults.js";
import { checkNameFields, checkSeqIdValue, contentTypeError, jsonTooDeep, tooDeepError } from "./guards.js";
import { IDEMPOTENCY_MAX_KEY_LENGTH, isRemembered, type IdempotencyCache } from "./idempotency.js";
import { allowedMethods, matchRoute, specOperations, validateRequest } from "./spec.js";
import { adapterConfigJson, DEFAULT_LORA_ALPHA } from "./model/index.js";
import { decodeForwardBackwardBody } from "./proto.js";
import { CheckpointExistsError, type LoraInfo, type Store } from "./store.js";
import { writeSyntheticFile } from "./synthetic.js";
import { checkCheckpointName, HttpError, randomHex, tinkerPath, type CheckpointKind } from "./util.js";

/** A request as the server received it (for tests: what did the client send?). */
export type RecordedRequest = {
  /** Arrival time, epoch ms. */
  time: number;
  /** HTTP method. */
  method: string;
  /** Percent-decoded path, without the query. */
  path: string;
  /** The raw request target (path and query) as sent. */
  url: string;
  /** Request headers (lower-case names). */
  headers: Record<string, string | string[] | undefined>;
  /**
   * Parsed JSON body; for a protobuf forward_backward body, its decoded JSON shape (`{model_id, seq_id,
   * forward_backward_input, forward_only}`), or the raw bytes if it does not decode; the raw text if it was not
   * JSON; undefined if empty; a placeholder string for bodies over 1 MiB (so the ring of recorded requests
   * stays small).
   */
  body: unknown;
  /** The body bytes exactly as sent (still compressed if they were), for protobuf bodies up to 1 MiB. */
  raw?: Buffer;
  /** Response status, once answered. */
  status?: number;
  /** The `x-request-id` the server answered with. */
  requestId: string;
};

/** Largest accepted request body. */
export const MAX_BODY_BYTES = 64 * 1024 * 1024;

/** Bodies larger than this are not kept in recorded requests. */
export const RECORDED_BODY_LIMIT = 1024 * 1024;

/** Most recent requests kept in {@link HttpApp.requests}. */
export const RECORDED_REQUESTS_LIMIT = 1000;

/** Dependencies of {@link HttpApp}. */
export type HttpAppDeps = {
  handlers: Record<string, OperationHandler>;
  keys: ReadonlyMap<string, string>;
  /** Authenticates API keys and JWTs (`auth.ts`). */
  auth: ServerAuth;
  faults: FaultInjector;
  archive: ArchiveService;
  store: Store;
  baseUrl: () => string;
  log: (line: string) => void;
  onRequest: ((req: RecordedRequest) => void) | undefined;
  /** Told about requests rejected by schema validation (lets training ops release their seq id). */
  onInvalidRequest?: (operationId: string, owner: string, body: unknown, error: HttpError) => void;
  /** Remembered answers of requests with `X-Idempotency-Key` (see `idempotency.ts`). */
  idempotency: IdempotencyCache;
  /** The owner of the server's own API key: the only one allowed on `/local/admin/*`. */
  adminOwner: string;
  /** Whether `/local/admin/faults` exists (fault injection enabled at start). */
  faultAdmin: boolean;
};

/** `bodyError` of a body nested too deep (see `guards.ts`). */
const TOO_DEEP = "\u0000too deep";

const syntheticSchema = z.object({
  run_id: z.string().min(1).max(120).optional(),
  name: z.string(),
  size_bytes: z
    .number()
    .int()
    .min(0)
    .max(2 ** 45),
  overwrite: z.boolean().optional(),
});

const faultsBodySchema = z.object({ rules: z.array(faultRuleSchema) });

function zodIssue(err: z.ZodError): HttpError {
  const issue = err.issues[0]!;
  const field = ["body", ...issue.path.map(String)].join(".");
  return new HttpError(422, `${field}: ${issue.message}`, { field });
}

class BodyTooLarge extends Error {}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new BodyTooLarge());
        req.removeAllListeners("data");
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

/** The local server's HTTP request handler. */
export class HttpApp {
  readonly #d: HttpAppDeps;
  readonly #requests: RecordedRequest[] = [];
  /** Where #sendJson reports the answer of a request whose idempotency key is being remembered. */
  readonly #capture = new WeakMap<
    ServerResponse,
    (status: number, headers: Record<string, string>, body: unknown, bytes: number) => void
  >();
  /** Set when the server is shutting down: answers carry `Connection: close`. */
  closing = false;

  /** Creates the handler; every spec operation must have a handler. */
  constructor(deps: HttpAppDeps) {
    this.#d = deps;
    for (const op of specOperations) {
      if (!deps.handlers[op.operationId]) throw new Error(`no handler for spec operation ${op.operationId}`);
    }
  }

  /** The most recent requests (oldest first), at most {@link RECORDED_REQUESTS_LIMIT}. */
  get requests(): RecordedRequest[] {
    return this.#requests;
  }

  /** Handles one HTTP request (never rejects). */
  handle(req: IncomingMessage, res: ServerResponse): void {
    this.#handle(req, res).catch((err: unknown) => {
      this.#d.log(`http: unhandled error: ${(err as Error).stack ?? String(err)}`);
      if (!res.headersSent) this.#sendJson(req, res, 500, { detail: "internal server error" }, {}, undefined);
      else res.destroy();
    });
  }

  #owner(req: IncomingMessage, path: string): string {
    const raw = req.headers["x-api-key"];
    return this.#d.auth.ownerOf(Array.isArray(raw) ? raw[0] : raw, path);
  }

  #origin(req: IncomingMessage): string {
    const host = req.headers.host;
    return host !== undefined && /^[A-Za-z0-9.\-:[\]]+$/.test(host) ? `http://${host}` : this.#d.baseUrl();
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const requestId = randomUUID();
    res.setHeader("x-request-id", requestId);
    if (this.closing) res.setHeader("connection", "close");
    const method = (req.method ?? "GET").toUpperCase();
    const rawUrl = req.url ?? "/";
    const q = rawUrl.indexOf("?");
    const rawPath = q >= 0 ? rawUrl.slice(0, q) : rawUrl;
    const query = new URLSearchParams(q >= 0 ? rawUrl.slice(q + 1) : "");
    let segments: string[] | undefined;
    try {
      segments = rawPath
        .split("/")
        .filter((s) => s !== "")
        .map((s) => decodeURIComponent(s));
    } catch {
      segments = undefined;
    }
    const path = segments ? `/${segments.join("/")}` : rawPath;

    let raw: Buffer;
    try {
      raw = await readBody(req, MAX_BODY_BYTES);
    } catch (err) {
      if (err instanceof BodyTooLarge) {
        res.setHeader("connection", "close");
        this.#sendJson(req, res, 413, { detail: `request body exceeds ${MAX_BODY_BYTES} bytes` }, {}, undefined);
      } else {
        res.destroy();
      }
      return;
    }
    let body: unknown;
    let bodyError: string | undefined;
    const protobuf = String(req.headers["content-type"] ?? "").includes("protobuf");
    if (raw.length > 0 && !protobuf) {
      if (jsonTooDeep(raw)) {
        bodyError = TOO_DEEP;
      } else {
        try {
          body = JSON.parse(raw.toString("utf8"));
        } catch (err) {
          bodyError = (err as Error).message;
        }
      }
    }

    let decoded: Record<string, unknown> | HttpError | undefined;
    if (protobuf && method === "POST" && path === "/api/v1/forward_backward") {
      try {
        const encoding = req.headers["content-encoding"];
        decoded = decodeForwardBackwardBody(raw, Array.isArray(encoding) ? encoding.join(",") : encoding);
      } catch (err) {
        if (!(err instanceof HttpError)) throw err;
        decoded = err;
      }
    }
    const record: RecordedRequest = {
      time: Date.now(),
      method,
      path,
      url: rawUrl,
      headers: { ...req.headers },
      body:
        raw.length > RECORDED_BODY_LIMIT
          ? `<body of ${raw.length} bytes not recorded>`
          : protobuf
            ? decoded !== undefined && !(decoded instanceof HttpError)
              ? decoded
              : raw
            : bodyError !== undefined
              ? raw.toString("utf8")
              : body,
      requestId,
    };
    if (protobuf && raw.length <= RECORDED_BODY_LIMIT) record.raw = raw;
    this.#requests.push(record);
    if (this.#requests.length > RECORDED_REQUESTS_LIMIT) this.#requests.splice(0, this.#requests.length - RECORDED_REQUESTS_LIMIT);
    res.on("finish", () => {
      record.status = res.statusCode;
      this.#d.log(`${method} ${path} ${res.statusCode} ${Math.round(performance.now() - started)}ms`);
    });
    try {
      this.#d.onRequest?.(record);
    } catch (err) {
      this.#d.log(`http: onRequest hook threw: ${(err as Error).message}`);
    }

    let cut: number | undefined;
    if (!path.startsWith("/local/admin")) {
      const fault = this.#d.faults.match(method, path);
      if (fault?.kind === "drop") {
        record.status = 0;
        req.socket.destroy();
        return;
      }
      if (fault?.kind === "status") {
        const headers: Record<string, string> = {};
        if (fault.retryAfter !== undefined) headers["retry-after"] = String(fault.retryAfter);
        this.#sendJson(req, res, fault.status, { detail: "injected fault" }, headers, undefined);
        return;
      }
      if (fault?.kind === "cut") cut = fault.bytes;
      // The work is done, then the answer is lost: the connection is destroyed before the head goes out.
      if (fault?.kind === "lose") {
        res.writeHead = (() => {
          req.socket.destroy();
          return res;
        }) as unknown as typeof res.writeHead;
      }
    }

    const idem = segments ? await this.#idempotency(req, res, method, path, raw, cut) : undefined;
    if (idem === "answered") return;

    const ac = new AbortController();
    res.on("close", () => {
      if (!res.writableFinished) ac.abort();
    });
    try {
      if (!segments) throw new HttpError(400, "the request path is not valid percent-encoding");
      const reply = await this.#route(req, res, method, segments, query, protobuf ? decoded : body, bodyError, ac.signal, cut);
      if (reply === "handled" || res.destroyed) return;
      if (reply.bytes !== undefined) this.#sendBytes(req, res, reply.status, reply.bytes, reply.headers ?? {}, cut);
      else this.#sendJson(req, res, reply.status, reply.body, reply.headers ?? {}, cut);
    } catch (err) {
      if (err instanceof HttpError) {
        const payload: Record<string, unknown> = { detail: err.message };
        if (err.field !== undefined) payload.field = err.field;
        if (res.headersSent || res.destroyed) res.destroy();
        else this.#sendJson(req, res, err.status, payload, err.headers, cut);
        return;
      }
      this.#d.log(`http: ${method} ${path} failed: ${(err as Error).stack ?? String(err)}`);
      if (res.headersSent) res.destroy();
      else this.#sendJson(req, res, 500, { detail: `internal server error: ${(err as Error).message}` }, {}, undefined);
    } finally {
      idem?.(undefined);
    }
  }

  /**
   * Applies `X-Idempotency-Key` (see `idempotency.ts`): answers a repeat ("answered"), or arranges for
   * this request's answer to be remembered and returns the function that ends that (undefined when the
   * request is not remembered).
   */
  async #idempotency(
    req: IncomingMessage,
    res: ServerResponse,
    method: string,
    path: string,
    raw: Buffer,
    cut: number | undefined,
  ): Promise<"answered" | ((answer: undefined) => void) | undefined> {
    const header = req.headers["x-idempotency-key"];
    const key = Array.isArray(header) ? header[0] : header;
    const apiKey = req.headers["x-api-key"];
    const owner = typeof apiKey === "string" ? this.#d.auth.tryOwnerOf(apiKey, path) : undefined;
    if (key === undefined || key === "" || owner === undefined || !isRemembered(method, path)) return undefined;
    if (key.length > IDEMPOTENCY_MAX_KEY_LENGTH) {
      this.#sendJson(
        req,
        res,
        400,
        { detail: `X-Idempotency-Key is longer than ${IDEMPOTENCY_MAX_KEY_LENGTH} characters`, field: "header.x-idempotency-key" },
        {},
        cut,
      );
      return "answered";
    }
    const decision = await this.#d.idempotency.begin(`${owner}\n${method}\n${path}\n${key}`, raw);
    if (decision.kind === "mismatch") {
      const detail = `X-Idempotency-Key ${JSON.stringify(key)} was already used for a different ${method} ${path} request body; use a new key for each request`;
      this.#sendJson(req, res, 422, { detail, field: "header.x-idempotency-key" }, {}, cut);
      return "answered";
    }
    if (decision.kind === "replay") {
      const { answer } = decision;
      this.#sendJson(req, res, answer.status, answer.body, { ...answer.headers, "idempotent-replayed": "true" }, cut);
      return "answered";
    }
    this.#capture.set(res, (status, headers, body, bytes) => decision.finish({ status, headers, body, bytes }));
    return () => {
      this.#capture.delete(res);
      decision.finish(undefined);
    };
  }

  async #route(
    req: IncomingMessage,
    res: ServerResponse,
    method: string,
    segments: string[],
    query: URLSearchParams,
    body: unknown,
    bodyError: string | undefined,
    signal: AbortSignal,
    cut: number | undefined,
  ): Promise<Reply | "handled"> {
    const path = `/${segments.join("/")}`;
    if (segments[0] === "local" && segments[1] === "archives") {
      return this.#download(req, res, method, segments, query, cut);
    }
    if (segments[0] === "local" && segments[1] === "admin") {
      if (path === "/local/admin/faults" && !this.#d.faultAdmin) {
        throw new HttpError(404, `no route for ${method} ${path} (fault injection is off; enable it when starting the server)`);
      }
      const owner = this.#owner(req, path);
      if (owner !== this.#d.adminOwner) throw new HttpError(403, `${path} needs the server's own API key`);
      if (bodyError === TOO_DEEP) throw tooDeepError();
      if (bodyError !== undefined) throw new HttpError(400, `request body is not valid JSON: ${bodyError}`, { field: "body" });
      return this.#admin(method, path, owner, body);
    }
    if (segments[0] !== "api" || segments[1] !== "v1") throw new HttpError(404, `no route for ${method} ${path}`);

    const owner = path === "/api/v1/healthz" ? "" : this.#owner(req, path);
    const match = matchRoute(method, segments);
    if (match === undefined) throw new HttpError(404, `no route for ${method} ${path}`);
    if (match === "method") {
      throw new HttpError(405, `${method} is not allowed on ${path}`, { headers: { allow: allowedMethods(segments).join(", ") } });
    }
    const hasBody = body !== undefined || bodyError !== undefined || String(req.headers["content-type"] ?? "").includes("protobuf");
    if (hasBody && match.operation.bodySchema !== undefined) {
      const wrongType = contentTypeError(match.operation.operationId, match.operation.template, req.headers["content-type"]);
      if (wrongType !== undefined) throw wrongType;
      if (body instanceof HttpError) throw body; // the protobuf body did not decode (400 naming what is wrong)
    }
    if (bodyError !== undefined && match.operation.bodySchema !== undefined) {
      if (bodyError === TOO_DEEP) throw tooDeepError();
      throw new HttpError(400, `request body is not valid JSON: ${bodyError}`, { field: "body" });
    }
    const badSeq = checkSeqIdValue(match.operation.operationId, body);
    if (badSeq !== undefined) throw badSeq;
    const badName = checkNameFields(match.operation.operationId, match.params, body);
    if (badName !== undefined) throw badName;
    const input = validateRequest(match.operation, match.params, query, match.operation.bodySchema ? body : undefined);
    if ("message" in input) {
      const err = new HttpError(422, `${input.field}: ${input.message}`, { field: input.field });
      this.#d.onInvalidRequest?.(match.operation.operationId, owner, body, err);
      throw err;
    }
    const ctx: OpContext = {
      owner,
      query: input.query,
      params: input.params,
      body: input.body,
      req,
      res,
      signal,
      origin: this.#origin(req),
    };
    return this.#d.handlers[match.operation.operationId]!(ctx);
  }

  async #admin(method: string, path: string, owner: string, body: unknown): Promise<Reply> {
    if (path === "/local/admin/faults") {
      if (method === "DELETE") {
        this.#d.faults.clear();
        return { status: 204 };
      }
      if (method !== "POST") throw new HttpError(405, `${method} is not allowed on ${path}`, { headers: { allow: "POST, DELETE" } });
      const parsed = faultsBodySchema.safeParse(body ?? {});
      if (!parsed.success) throw zodIssue(parsed.error);
      this.#d.faults.set(parsed.data.rules as Parameters<FaultInjector["set"]>[0]);
      return { status: 200, body: { rules: parsed.data.rules.length } };
    }
    if (path === "/local/admin/synthetic_checkpoint") {
      if (method !== "POST") throw new HttpError(405, `${method} is not allowed on ${path}`, { headers: { allow: "POST" } });
      const parsed = syntheticSchema.safeParse(body ?? {});
      if (!parsed.success) throw zodIssue(parsed.error);
      return { status: 200, body: await this.#synthetic(owner, parsed.data) };
    }
    throw new HttpError(404, `no route for ${method} ${path}`);
  }

  /** Creates a training checkpoint whose weights are `size_bytes` of deterministic pseudo-random data. */
  async #synthetic(owner: string, input: z.infer<typeof syntheticSchema>): Promise<Record<string, unknown>> {
    const { store } = this.#d;
    const bad = checkCheckpointName(input.name);
    if (bad !== undefined) throw new HttpError(400, `name ${bad}`, { field: "body.name" });
    const runId = input.run_id ?? `synthetic-${randomHex(6)}:train:0`;
    const lora: LoraInfo = { rank: 8, seed: 0, alpha: DEFAULT_LORA_ALPHA, train_attn: true, train_mlp: true, train_unembed: true };
    let run = store.run(runId);
    if (run && run.owner !== owner) throw new HttpError(404, `training run ${runId} not found`, { field: "body.run_id" });
    if (!run) {
      const now = Date.now();
      run = {
        training_run_id: runId,
        owner,
        session_id: null,
        model_seq_id: null,
        base_model: "meta-llama/Llama-3.2-1B",
        lora,
        user_metadata: { synthetic: "true" },
        created_at: now,
        last_request_time: now,
      };
      await store.addRun(run);
    }
    const config = {
      baseModel: run.base_model,
      rank: run.lora.rank,
      seed: run.lora.seed,
      alpha: run.lora.alpha,
      trainAttn: run.lora.train_attn,
      trainMlp: run.lora.train_mlp,
      trainUnembed: run.lora.train_unembed,
    };
    try {
      const rec = await store.saveCheckpoint({
        runId,
        kind: "weights",
        name: input.name,
        owner,
        overwrite: input.overwrite ?? false,
        ttlSeconds: null,
        base_model: run.base_model,
        lora: run.lora,
        files: [
          { name: "adapter_config.json", data: `${JSON.stringify(adapterConfigJson(config), null, 2)}\n` },
          { name: "adapter_model.safetensors", write: (p) => writeSyntheticFile(p, `${runId}/${input.name}`, input.size_bytes) },
        ],
      });
      return {
        tinker_path: tinkerPath(runId, "weights", rec.name),
        training_run_id: runId,
        checkpoint_id: `weights/${rec.name}`,
        size_bytes: rec.size_bytes,
      };
    } catch (err) {
      if (err instanceof CheckpointExistsError) throw new HttpError(409, err.message, { field: "body.name" });
      throw err;
    }
  }

  async #download(
    req: IncomingMessage,
    res: ServerResponse,
    method: string,
    segments: string[],
    query: URLSearchParams,
    cut: number | undefined,
  ): Promise<Reply | "handled"> {
    if (segments.length !== 5) throw new HttpError(404, `no route for ${method} /${segments.join("/")}`);
    if (method !== "GET" && method !== "HEAD")
      throw new HttpError(405, `${method} is not allowed on archive downloads`, { headers: { allow: "GET, HEAD" } });
    const [, , runId, kind, name] = segments as [string, string, string, string, string];
    if (kind !== "weights" && kind !== "sampler_weights") throw new HttpError(404, `no route for ${method} /${segments.join("/")}`);
    const verified = this.#d.archive.verify({ runId, kind: kind as CheckpointKind, name }, query);
    if (typeof verified === "string") throw new HttpError(403, verified);
    const rec = this.#d.store.checkpoint(runId, kind as CheckpointKind, name);
    if (!rec) throw new HttpError(404, `checkpoint ${kind}/${name} of training run ${runId} no longer exists`);
    if (rec.gen !== verified.gen) {
      // 410, not 404 or 412: this URL named bytes that are gone for good (the checkpoint was overwritten).
      throw new HttpError(
        410,
        `checkpoint ${kind}/${name} of training run ${runId} was overwritten after this download URL was issued; ` +
          `request a new download URL from the archive endpoint and start the download over (do not resume)`,
      );
    }
    await this.#d.archive.serve(req, res, rec, {}, cut);
    return "handled";
  }

  #sendBytes(
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    bytes: Uint8Array,
    headers: Record<string, string>,
    cut: number | undefined,
  ): void {
    res.writeHead(status, { "content-type": "application/octet-stream", ...headers, "content-length": String(bytes.length) });
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    if (cut !== undefined && cut < bytes.length) {
      res.write(bytes.subarray(0, cut), () => res.destroy());
      return;
    }
    res.end(bytes);
  }

  #sendJson(
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    body: unknown,
    headers: Record<string, string>,
    cut: number | undefined,
  ): void {
    const out: Record<string, string> = { ...headers };
    let payload: Buffer | undefined;
    if (body !== undefined && status !== 204 && status !== 304) {
      payload = Buffer.from(JSON.stringify(body), "utf8");
      out["content-type"] = "application/json";
    }
    if (status !== 204 && status !== 304) out["content-length"] = String(payload?.length ?? 0);
    const capture = this.#capture.get(res);
    if (capture !== undefined) {
      this.#capture.delete(res);
      const kept: Record<string, string> = {};
      for (const [k, v] of Object.entries(headers)) if (k !== "connection" && k !== "content-type" && k !== "content-length") kept[k] = v;
      capture(status, kept, payload === undefined ? undefined : body, payload?.length ?? 0);
    }
    res.writeHead(status, out);
    if (payload === undefined || req.method === "HEAD") {
      res.end();
      return;
    }
    if (cut !== undefined && cut < payload.length) {
      res.write(payload.subarray(0, cut), () => res.destroy());
      return;
    }
    res.end(payload);
  }
}
