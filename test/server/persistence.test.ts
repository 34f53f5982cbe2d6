// Persistence of the local server: training state saved and restored bit-exactly (with and without the
// optimizer), state that survives a restart, and checkpoints that survive kill -9 at any moment.

import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { list as tarList } from "tar";
import { startLocalServer, type LocalServer } from "../../src/server/index.js";

// biome-ignore lint/suspicious/noExplicitAny: untyped JSON from the wire, checked field by field
type AnyJson = any;

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

function api(baseUrl: string, key: string) {
  return async (method: string, path: string, body?: unknown): Promise<{ status: number; body: AnyJson; headers: Headers }> => {
    const r = await fetch(`${baseUrl}${path}`, {
      method,
      headers: { "x-api-key": key, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      redirect: "manual",
    });
    const text = await r.text();
    return { status: r.status, body: text === "" ? undefined : JSON.parse(text), headers: r.headers };
  };
}
type Api = ReturnType<typeof api>;

async function result(call: Api, requestId: string): Promise<AnyJson> {
  for (;;) {
    const r = await call("POST", "/api/v1/retrieve_future", { request_id: requestId });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    if (r.body.type !== "try_again") return r.body;
  }
}

async function run(call: Api, path: string, body: AnyJson): Promise<AnyJson> {
  const r = await call("POST", path, body);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const out = await result(call, r.body.request_id);
  assert.ok(!("error" in out), JSON.stringify(out));
  return out;
}

const LORA = { rank: 4, seed: 3, train_attn: true, train_mlp: true, train_unembed: true };
const BATCH = [
  {
    model_input: { chunks: [{ type: "encoded_text", tokens: [5, 17, 42, 99, 3] }] },
    loss_fn_inputs: { target_tokens: { data: [17, 42, 99, 3, 7], dtype: "int64" }, weights: { data: [1, 1, 1, 1, 1], dtype: "float32" } },
  },
  {
    model_input: { chunks: [{ type: "encoded_text", tokens: [200, 1, 2] }] },
    loss_fn_inputs: { target_tokens: { data: [1, 2, 3], dtype: "int64" }, weights: { data: [1, 0.5, 2], dtype: "float32" } },
  },
];

/** A training client over raw HTTP: numbered seq ids, fb + optim steps. */
class Trainer {
  seq = 0;
  readonly call: Api;
  readonly modelId: string;
  constructor(call: Api, modelId: string) {
    this.call = call;
    this.modelId = modelId;
  }

  static async create(call: Api, sessionId: string, modelSeqId: number): Promise<Trainer> {
    const created = await run(call, "/api/v1/create_model", {
      session_id: sessionId,
      model_seq_id: modelSeqId,
      base_model: "Qwen/Qwen3-8B",
      lora_config: LORA,
    });
    return new Trainer(call, created.model_id);
  }

  /** forward_backward + optim_step; returns the loss and the first datum's logprobs before the step. */
  async step(): Promise<{ loss: number; logprobs: number[] }> {
    const fb = await run(this.call, "/api/v1/forward_backward", {
      model_id: this.modelId,
      seq_id: ++this.seq,
      forward_backward_input: { data: BATCH, loss_fn: "cross_entropy" },
    });
    await run(this.call, "/api/v1/optim_step", {
      model_id: this.modelId,
      seq_id: ++this.seq,
      adam_params: { learning_rate: 0.05, eps: 1e-8 },
    });
    return { loss: fb.metrics["loss:sum"], logprobs: fb.loss_fn_outputs[0].logprobs.data };
  }

  async save(name: string): Promise<string> {
    return (await run(this.call, "/api/v1/save_weights", { model_id: this.modelId, seq_id: ++this.seq, path: name })).path;
  }

  async load(path: string, optimizer: boolean): Promise<void> {
    await run(this.call, "/api/v1/load_weights", { model_id: this.modelId, seq_id: ++this.seq, path, optimizer });
  }
}

describe("training state on disk", () => {
  let dataDir: string;
  let server: LocalServer;
  let call: Api;
  let sessionId: string;
  let ckptPath: string;
  let continued: Array<{ loss: number; logprobs: number[] }>;
  let runIds: string[];

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "tinker-persist-"));
    server = await startLocalServer({ dataDir });
    call = api(server.baseUrl, server.apiKey);
    sessionId = (await call("POST", "/api/v1/create_session", { tags: [], user_metadata: { who: "test" }, sdk_version: "test" })).body
      .session_id;
  });
  after(async () => {
    await server.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  test("save, continue, reload with optimizer: identical continuation, bit for bit", async () => {
    const a = await Trainer.create(call, sessionId, 0);
    await a.step();
    await a.step();
    ckptPath = await a.save("mid");
    continued = [await a.step(), await a.step(), await a.step()];
    assert.ok(continued[2]!.loss < continued[0]!.loss, "training reduces the loss");

    const b = await Trainer.create(call, sessionId, 1);
    await b.load(ckptPath, true);
    const replay = [await b.step(), await b.step(), await b.step()];
    assert.deepStrictEqual(replay, continued);
    runIds = [a.modelId, b.modelId];
  });

  test("reload without optimizer: same weights, then diverges after the first step", async () => {
    const c = await Trainer.create(call, sessionId, 2);
    await c.load(ckptPath, false);
    const fresh = [await c.step(), await c.step()];
    assert.deepStrictEqual(fresh[0], continued[0], "the weights were restored exactly");
    assert.notEqual(fresh[1]!.loss, continued[1]!.loss, "a reset Adam state takes a different step");
    runIds.push(c.modelId);
  });

  test("a restart on the same data dir sees runs, checkpoints and sessions; checkpoints load", async () => {
    const before = {
      runs: (await call("GET", "/api/v1/training_runs?limit=100")).body,
      checkpoints: (await call("GET", "/api/v1/checkpoints")).body,
      sessions: (await call("GET", "/api/v1/sessions")).body,
      session: (await call("GET", `/api/v1/sessions/${sessionId}`)).body,
    };
    const signed = await call("GET", `/api/v1/training_runs/${runIds[0]}/checkpoints/weights/mid/archive`);
    const signedUrl = new URL(String(signed.headers.get("location")));
    const key = server.apiKey;
    await server.close();
    server = await startLocalServer({ dataDir });
    assert.equal(server.apiKey, key, "the API key is kept in the data dir");
    call = api(server.baseUrl, server.apiKey);

    const runs = (await call("GET", "/api/v1/training_runs?limit=100")).body;
    assert.deepEqual(runs.training_runs.map((r: AnyJson) => r.training_run_id).sort(), [...runIds].sort());
    assert.deepEqual(runs, before.runs);
    assert.deepEqual((await call("GET", "/api/v1/checkpoints")).body, before.checkpoints);
    assert.deepEqual((await call("GET", "/api/v1/sessions")).body, before.sessions);
    assert.deepEqual((await call("GET", `/api/v1/sessions/${sessionId}`)).body, before.session);

    // Live models do not survive a restart; their checkpoints do.
    const stale = await call("POST", "/api/v1/optim_step", { model_id: runIds[0], seq_id: 100, adam_params: { learning_rate: 0.1 } });
    assert.equal(stale.status, 404);
    assert.match(stale.body.detail, /not loaded/);
    const d = await Trainer.create(call, sessionId, 3);
    await d.load(ckptPath, true);
    assert.deepStrictEqual(await d.step(), continued[0]);
    const archive = await call("GET", `/api/v1/training_runs/${runIds[0]}/checkpoints/weights/mid/archive`);
    assert.equal(archive.status, 302);
    // A URL signed before the restart still downloads (the signing key lives in the data dir).
    const old = await fetch(`${server.baseUrl}${signedUrl.pathname}${signedUrl.search}`);
    assert.equal(old.status, 200);
    assert.ok((await old.arrayBuffer()).byteLength > 1024);
    const sig = signedUrl.searchParams.get("sig") ?? "";
    signedUrl.searchParams.set("sig", `${sig.slice(0, -1)}${sig.endsWith("0") ? "1" : "0"}`);
    const forged = await fetch(`${server.baseUrl}${signedUrl.pathname}${signedUrl.search}`);
    assert.equal(forged.status, 403);
  });
});

// ---------------------------------------------------------------------------------------------
// Crash safety
// ---------------------------------------------------------------------------------------------

type Child = { proc: ChildProcess; baseUrl: string; exited: Promise<void> };

async function spawnServer(dataDir: string, apiKey: string): Promise<Child> {
  const proc = spawn(
    process.execPath,
    ["--import", "tsx", "src/server/serve-main.ts", "--port", "0", "--data-dir", dataDir, "--api-key", apiKey, "--quiet"],
    { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] },
  );
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  let out = "";
  let err = "";
  proc.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const baseUrl = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${err}`)), 20_000);
    proc.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /export TINKER_BASE_URL=(\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}: ${err}`));
    });
  });
  assert.match(out, new RegExp(`export TINKER_API_KEY=${apiKey}`));
  return { proc, baseUrl, exited };
}

test("kill -9 during saves never leaves a listed checkpoint incomplete", async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), "tinker-crash-"));
  const apiKey = "tml-crash-test";
  const N = 25;
  const killDelaysMs = [0, 20, 150];
  try {
    // A leftover from an earlier crash in the staging area is cleaned at start-up.
    await rm(join(dataDir, "tmp"), { recursive: true, force: true });
    for (let round = 0; round < killDelaysMs.length; round++) {
      const child = await spawnServer(dataDir, apiKey);
      const call = api(child.baseUrl, apiKey);
      if (round === 0) await writeFile(join(dataDir, "tmp", "stray-file"), "x");
      const session = (await call("POST", "/api/v1/create_session", { tags: [], user_metadata: {}, sdk_version: "crash" })).body.session_id;
      const modelId = (
        await run(call, "/api/v1/create_model", {
          session_id: session,
          model_seq_id: 0,
          base_model: "Qwen/Qwen3-8B",
          lora_config: { rank: 64 },
        })
      ).model_id;
      const names = Array.from({ length: N }, (_, i) => `r${round}-${String(i).padStart(2, "0")}`);
      await Promise.all(
        names.map((name, i) =>
          call("POST", "/api/v1/save_weights", { model_id: modelId, seq_id: i + 1, path: name }).catch(() => undefined),
        ),
      );
      await new Promise((r) => setTimeout(r, killDelaysMs[round]));
      child.proc.kill("SIGKILL");
      await child.exited;

      const server = await startLocalServer({ dataDir, apiKey });
      try {
        assert.deepEqual(await readdir(join(dataDir, "tmp")), [], "start-up empties the staging area");
        const check = api(server.baseUrl, apiKey);
        const listed = (await check("GET", `/api/v1/training_runs/${modelId}/checkpoints`)).body.checkpoints.map(
          (c: AnyJson) => c.checkpoint_id,
        );
        // Saves run in seq order, so the survivors are exactly a prefix of the names.
        assert.deepEqual(
          listed,
          names.slice(0, listed.length).map((n) => `weights/${n}`),
          `round ${round}`,
        );
        const sess = (await check("POST", "/api/v1/create_session", { tags: [], user_metadata: {}, sdk_version: "check" })).body.session_id;
        const probe = new Trainer(
          check,
          (
            await run(check, "/api/v1/create_model", {
              session_id: sess,
              model_seq_id: 0,
              base_model: "Qwen/Qwen3-8B",
              lora_config: { rank: 64 },
            })
          ).model_id,
        );
        for (const id of listed as string[]) {
          const archive = await check("GET", `/api/v1/training_runs/${modelId}/checkpoints/${id}/archive`);
          assert.equal(archive.status, 302);
          const download = await fetch(archive.headers.get("location")!);
          assert.equal(download.status, 200);
          const tar = Buffer.from(await download.arrayBuffer());
          const entries: string[] = [];
          const file = join(dataDir, "..", `${id.replace("/", "-")}-${round}.tar`);
          await writeFile(file, tar);
          await tarList({ file, onReadEntry: (e) => void entries.push(e.path) });
          await rm(file, { force: true });
          assert.deepEqual(entries, ["adapter_config.json", "adapter_model.safetensors", "optimizer.safetensors", "checkpoint_complete"]);
          await probe.load(`tinker://${modelId}/${id}`, true);
        }
        t.diagnostic(`round ${round}: killed after ${killDelaysMs[round]} ms, ${listed.length}/${N} saves survived`);
      } finally {
        await server.close();
      }
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
