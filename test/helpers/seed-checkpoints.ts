/**
 * Creates training runs and checkpoints on a local server by driving its raw HTTP API (create_session →
 * create_model → retrieve_future → save_weights / save_weights_for_sampler → retrieve_future), so REST,
 * download and CLI tests do not depend on the training client.
 *
 * @example
 * ```ts
 * const server = await startLocalServer();
 * const run = await seedRun(server.baseUrl, server.apiKey, { saves: [{ name: "a" }, { name: "s", kind: "sampler_weights" }] });
 * run.paths; // ["tinker://<run>/weights/a", "tinker://<run>/sampler_weights/s"]
 * ```
 */

/** One checkpoint to save. */
export interface SeedSave {
  /** Checkpoint name. */
  name: string;
  /** `weights` (save_state, default) or `sampler_weights`. */
  kind?: "weights" | "sampler_weights";
  /** TTL in seconds (≥ 3600). */
  ttlSeconds?: number;
}

/** What {@link seedRun} created. */
export interface SeededRun {
  sessionId: string;
  runId: string;
  /** Tinker paths of the saves, in order. */
  paths: string[];
}

async function post(baseUrl: string, apiKey: string, path: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${baseUrl}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": apiKey },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok && res.status !== 408) throw new Error(`seed: POST ${path} → ${res.status} ${text}`);
  return (text === "" ? {} : JSON.parse(text)) as Record<string, unknown>;
}

async function awaitFuture(baseUrl: string, apiKey: string, requestId: string): Promise<Record<string, unknown>> {
  for (let i = 0; i < 1000; i++) {
    const r = await post(baseUrl, apiKey, "/api/v1/retrieve_future", { request_id: requestId, allow_metadata_only: false });
    if (r["type"] === "try_again") continue;
    if ("error" in r) throw new Error(`seed: future ${requestId} failed: ${JSON.stringify(r)}`);
    return r;
  }
  throw new Error(`seed: future ${requestId} never completed`);
}

/** Creates a session, one LoRA model (= training run) and the given checkpoints. */
export async function seedRun(
  baseUrl: string,
  apiKey: string,
  options: { baseModel?: string; rank?: number; saves?: SeedSave[] } = {},
): Promise<SeededRun> {
  const session = await post(baseUrl, apiKey, "/api/v1/create_session", {
    tags: [],
    user_metadata: {},
    sdk_version: "0.1.0-test",
    type: "create_session",
  });
  const sessionId = String(session["session_id"]);
  const created = await post(baseUrl, apiKey, "/api/v1/create_model", {
    session_id: sessionId,
    model_seq_id: 0,
    base_model: options.baseModel ?? "meta-llama/Llama-3.2-1B",
    lora_config: { rank: options.rank ?? 4 },
    type: "create_model",
  });
  const model = await awaitFuture(baseUrl, apiKey, String(created["request_id"]));
  const runId = String(model["model_id"]);
  const paths: string[] = [];
  let seq = 1;
  for (const save of options.saves ?? []) {
    const kind = save.kind ?? "weights";
    const route = kind === "weights" ? "/api/v1/save_weights" : "/api/v1/save_weights_for_sampler";
    const body: Record<string, unknown> = {
      model_id: runId,
      path: save.name,
      seq_id: seq++,
      type: kind === "weights" ? "save_weights" : "save_weights_for_sampler",
    };
    if (kind === "weights") body["overwrite"] = false;
    if (save.ttlSeconds !== undefined) body["ttl_seconds"] = save.ttlSeconds;
    const fut = await post(baseUrl, apiKey, route, body);
    const result = await awaitFuture(baseUrl, apiKey, String(fut["request_id"]));
    paths.push(String(result["path"]));
  }
  return { sessionId, runId, paths };
}

/** Creates a large synthetic training checkpoint through the local server's admin route; returns its tinker path. */
export async function seedSynthetic(
  baseUrl: string,
  apiKey: string,
  input: { name: string; sizeBytes: number; runId?: string },
): Promise<string> {
  const body: Record<string, unknown> = { name: input.name, size_bytes: input.sizeBytes };
  if (input.runId !== undefined) body["run_id"] = input.runId;
  const r = await post(baseUrl, apiKey, "/local/admin/synthetic_checkpoint", body);
  return String(r["tinker_path"]);
}
