// Checkpoint archives on the local server: signed URLs (302 or JSON), 503 while generating, downloads
// without credentials, forged/expired URLs, tar contents, Range requests, and fault injection.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { get as httpGet } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { extract } from "tar";
import { startLocalServer, type LocalServer, type LocalServerOptions } from "../../src/server/index.js";
import { parseSafetensors } from "../../src/server/model/index.js";
import { syntheticChunks } from "../../src/server/synthetic.js";
import { type AnyJson, type Api, rawApi } from "../helpers/raw-api.js";

const api = rawApi;

async function run(call: Api, path: string, body: AnyJson): Promise<AnyJson> {
  const r = await call("POST", path, body);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  for (;;) {
    const p = await call("POST", "/api/v1/retrieve_future", { request_id: r.body.request_id });
    if (p.body.type === "try_again") continue;
    assert.ok(!("error" in p.body), JSON.stringify(p.body));
    return p.body;
  }
}

/** Starts a server with a model that has a training checkpoint "a" and a sampler checkpoint "s". */
async function serverWithCheckpoints(options: LocalServerOptions = {}): Promise<{ server: LocalServer; call: Api; runId: string }> {
  const server = await startLocalServer(options);
  const call = api(server);
  const session = (await call("POST", "/api/v1/create_session", { tags: [], user_metadata: {}, sdk_version: "t" })).body.session_id;
  const runId = (
    await run(call, "/api/v1/create_model", { session_id: session, model_seq_id: 0, base_model: "Qwen/Qwen3-8B", lora_config: { rank: 8 } })
  ).model_id;
  const datum = {
    model_input: { chunks: [{ type: "encoded_text", tokens: [1, 2, 3, 4] }] },
    loss_fn_inputs: { target_tokens: { data: [2, 3, 4, 5], dtype: "int64" }, weights: { data: [1, 1, 1, 1], dtype: "float32" } },
  };
  await run(call, "/api/v1/forward_backward", {
    model_id: runId,
    seq_id: 1,
    forward_backward_input: { data: [datum], loss_fn: "cross_entropy" },
  });
  await run(call, "/api/v1/optim_step", { model_id: runId, seq_id: 2, adam_params: { learning_rate: 0.01 } });
  await run(call, "/api/v1/save_weights", { model_id: runId, seq_id: 3, path: "a" });
  await run(call, "/api/v1/save_weights_for_sampler", { model_id: runId, seq_id: 4, path: "s" });
  return { server, call, runId };
}

/** Extracts a tar buffer into a fresh directory; returns the directory. */
async function untar(buf: Buffer): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "tinker-untar-"));
  await writeFile(join(dir, "..", `${dir.split("/").pop()}.tar`), buf);
  await extract({ file: join(dir, "..", `${dir.split("/").pop()}.tar`), cwd: dir });
  await rm(join(dir, "..", `${dir.split("/").pop()}.tar`));
  return dir;
}

/** GET with node:http, collecting whatever bytes arrive before the connection ends or breaks. */
function rawGet(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer; complete: boolean }> {
  return new Promise((resolve, reject) => {
    const req = httpGet(url, { headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let done = false;
      const finish = (complete: boolean) => {
        if (done) return;
        done = true;
        resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks), complete });
      };
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => finish(true));
      res.on("aborted", () => finish(false));
      res.on("error", () => finish(false));
      res.on("close", () => finish(res.complete));
    });
    req.on("error", reject);
  });
}

describe("archive URLs and downloads", () => {
  let server: LocalServer;
  let call: Api;
  let runId: string;
  let clockOffset = 0;
  let location: string;
  let full: Buffer;

  before(async () => {
    ({ server, call, runId } = await serverWithCheckpoints({ clock: () => Date.now() + clockOffset, extraApiKeys: ["tml-someone-else"] }));
  });
  after(async () => {
    await server.close();
  });

  test("302 with a signed Location on this server and an Expires date 15 minutes ahead", async () => {
    const r = await call("GET", `/api/v1/training_runs/${runId}/checkpoints/weights/a/archive`, undefined, { accept: "application/json" });
    assert.equal(r.status, 302);
    location = r.headers.get("location")!;
    assert.ok(location.startsWith(`${server.baseUrl}/local/archives/`), location);
    assert.match(location, /[?&]expires=\d+/);
    assert.match(location, /[?&]sig=[0-9a-f]{64}/);
    const expires = Date.parse(r.headers.get("expires")!);
    assert.ok(Math.abs(expires - (Date.now() + 15 * 60_000)) < 5000, r.headers.get("expires")!);
  });

  test("the signed URL downloads without an API key (any key header is ignored): a tar of the checkpoint files", async () => {
    const noKey = await fetch(location);
    assert.equal(noKey.status, 200);
    assert.equal(noKey.headers.get("accept-ranges"), "bytes");
    assert.equal(noKey.headers.get("content-type"), "application/x-tar");
    full = Buffer.from(await noKey.arrayBuffer());
    assert.equal(Number(noKey.headers.get("content-length")), full.length);
    const seen = server.requests.filter((r) => r.path.startsWith("/local/archives/"));
    assert.equal(seen.at(-1)!.headers["x-api-key"], undefined);

    const wrongKey = await fetch(location, { headers: { "x-api-key": "tml-garbage" } });
    assert.equal(wrongKey.status, 200);
    assert.ok(Buffer.from(await wrongKey.arrayBuffer()).equals(full), "the archive is deterministic");

    const dir = await untar(full);
    try {
      assert.deepEqual((await readdir(dir)).sort(), [
        "adapter_config.json",
        "adapter_model.safetensors",
        "checkpoint_complete",
        "optimizer.safetensors",
      ]);
      const config = JSON.parse(await readFile(join(dir, "adapter_config.json"), "utf8"));
      assert.equal(config.r, 8);
      assert.equal(config.base_model_name_or_path, "Qwen/Qwen3-8B");
      const weights = parseSafetensors(await readFile(join(dir, "adapter_model.safetensors")));
      assert.ok(weights.tensors.size > 0);
      assert.equal(weights.metadata.rank, "8");
      const optimizer = parseSafetensors(await readFile(join(dir, "optimizer.safetensors")));
      assert.equal(optimizer.metadata.step, "1");
      // Byte-identical to what the server stored.
      const stored = await findCheckpointDir(server.dataDir, "a");
      for (const f of ["adapter_config.json", "adapter_model.safetensors", "optimizer.safetensors", "checkpoint_complete"]) {
        assert.ok((await readFile(join(dir, f))).equals(await readFile(join(stored, f))), f);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("a sampler checkpoint's archive has no optimizer state", async () => {
    const r = await call("GET", `/api/v1/training_runs/${runId}/checkpoints/sampler_weights/s/archive`);
    const body = Buffer.from(await (await fetch(r.headers.get("location")!)).arrayBuffer());
    const dir = await untar(body);
    try {
      assert.deepEqual((await readdir(dir)).sort(), ["adapter_config.json", "adapter_model.safetensors", "checkpoint_complete"]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("Range requests: 206 with Content-Range, suffix ranges, 416 when unsatisfiable", async () => {
    const first = await fetch(location, { headers: { range: "bytes=0-99" } });
    assert.equal(first.status, 206);
    assert.equal(first.headers.get("content-range"), `bytes 0-99/${full.length}`);
    assert.equal(first.headers.get("content-length"), "100");
    assert.ok(Buffer.from(await first.arrayBuffer()).equals(full.subarray(0, 100)));

    const rest = await fetch(location, { headers: { range: "bytes=100-" } });
    assert.equal(rest.status, 206);
    assert.ok(Buffer.from(await rest.arrayBuffer()).equals(full.subarray(100)));

    const suffix = await fetch(location, { headers: { range: "bytes=-10" } });
    assert.equal(suffix.headers.get("content-range"), `bytes ${full.length - 10}-${full.length - 1}/${full.length}`);
    assert.ok(Buffer.from(await suffix.arrayBuffer()).equals(full.subarray(full.length - 10)));

    const beyond = await fetch(location, { headers: { range: `bytes=${full.length}-` } });
    assert.equal(beyond.status, 416);
    assert.equal(beyond.headers.get("content-range"), `bytes */${full.length}`);
    await beyond.arrayBuffer();
  });

  test("forged, tampered and expired URLs are 403", async () => {
    const url = new URL(location);
    const forged = new URL(url);
    forged.searchParams.set("sig", "0".repeat(64));
    assert.equal((await fetch(forged)).status, 403);
    const unsigned = new URL(url);
    unsigned.search = "";
    assert.equal((await fetch(unsigned)).status, 403);
    const later = new URL(url);
    later.searchParams.set("expires", String(Number(url.searchParams.get("expires")) + 3600));
    assert.equal((await fetch(later)).status, 403, "extending the expiry breaks the signature");
    const otherName = new URL(url.href.replace("/weights/a?", "/sampler_weights/s?"));
    const tampered = await fetch(otherName);
    assert.equal(tampered.status, 403);
    assert.equal(typeof ((await tampered.json()) as AnyJson).detail, "string");

    clockOffset += 16 * 60_000;
    const expired = await fetch(location);
    assert.equal(expired.status, 403);
    assert.match(((await expired.json()) as AnyJson).detail, /expired/);
    clockOffset = 0;
  });

  test("another user's private checkpoint has no archive (404)", async () => {
    const other = api(server, "tml-someone-else");
    const r = await other("GET", `/api/v1/training_runs/${runId}/checkpoints/weights/a/archive`);
    assert.equal(r.status, 404);
  });
});

describe("archive endpoint variants", () => {
  test("archiveResponse json: 200 {url, expires}", async () => {
    const { server, call, runId } = await serverWithCheckpoints({ archiveResponse: "json" });
    try {
      const r = await call("GET", `/api/v1/training_runs/${runId}/checkpoints/weights/a/archive`);
      assert.equal(r.status, 200);
      assert.deepEqual(Object.keys(r.body).sort(), ["expires", "url"]);
      assert.ok(!Number.isNaN(Date.parse(r.body.expires)));
      assert.match(r.body.expires, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/);
      const dl = await fetch(r.body.url);
      assert.equal(dl.status, 200);
      assert.ok((await dl.arrayBuffer()).byteLength > 0);
    } finally {
      await server.close();
    }
  });

  test("archiveGenerationDelayMs: 503 with Retry-After while generating, then the URL", async () => {
    const { server, call, runId } = await serverWithCheckpoints({ archiveGenerationDelayMs: 300 });
    try {
      const path = `/api/v1/training_runs/${runId}/checkpoints/weights/a/archive`;
      const first = await call("GET", path);
      assert.equal(first.status, 503);
      assert.equal(first.headers.get("retry-after"), "1");
      assert.deepEqual(first.body, { detail: "archive still being generated" });
      assert.equal((await call("GET", path)).status, 503);
      await new Promise((r) => setTimeout(r, 320));
      const ready = await call("GET", path);
      assert.equal(ready.status, 302);
      assert.equal((await fetch(ready.headers.get("location")!)).status, 200);
    } finally {
      await server.close();
    }
  });

  test("synthetic checkpoints: large deterministic weights, streamed into the archive", async () => {
    const server = await startLocalServer();
    try {
      const call = api(server);
      const size = 3_000_001;
      const r = await call("POST", "/local/admin/synthetic_checkpoint", { name: "big", size_bytes: size });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.match(r.body.tinker_path, /^tinker:\/\/.+\/weights\/big$/);
      const runId = r.body.training_run_id;
      const listed = (await call("GET", `/api/v1/training_runs/${runId}/checkpoints`)).body.checkpoints;
      assert.equal(listed[0].checkpoint_id, "weights/big");
      assert.ok(listed[0].size_bytes > size);
      assert.equal((await call("POST", "/local/admin/synthetic_checkpoint", { run_id: runId, name: "big", size_bytes: 10 })).status, 409);
      assert.equal((await api(server, "nope")("POST", "/local/admin/synthetic_checkpoint", { name: "x", size_bytes: 1 })).status, 401);

      const url = (await call("GET", `/api/v1/training_runs/${runId}/checkpoints/weights/big/archive`)).headers.get("location")!;
      const tar = Buffer.from(await (await fetch(url)).arrayBuffer());
      assert.ok(tar.length > size);
      const dir = await untar(tar);
      try {
        const weights = await readFile(join(dir, "adapter_model.safetensors"));
        const expected = createHash("sha256");
        for (const chunk of syntheticChunks(`${runId}/big`, size)) expected.update(chunk);
        assert.equal(createHash("sha256").update(weights).digest("hex"), expected.digest("hex"));
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
      // Loading it into a model fails cleanly as a user error.
      const session = (await call("POST", "/api/v1/create_session", { tags: [], user_metadata: {}, sdk_version: "t" })).body.session_id;
      const modelId = (
        await run(call, "/api/v1/create_model", {
          session_id: session,
          model_seq_id: 0,
          base_model: "meta-llama/Llama-3.2-1B",
          lora_config: { rank: 8 },
        })
      ).model_id;
      const load = await call("POST", "/api/v1/load_weights", { model_id: modelId, seq_id: 1, path: r.body.tinker_path, optimizer: false });
      let out: AnyJson;
      do out = (await call("POST", "/api/v1/retrieve_future", { request_id: load.body.request_id })).body;
      while (out.type === "try_again");
      assert.equal(out.category, "user");
    } finally {
      await server.close();
    }
  });
});

describe("fault injection", () => {
  let server: LocalServer;
  let call: Api;
  let runId: string;
  let location: string;
  let full: Buffer;

  before(async () => {
    ({ server, call, runId } = await serverWithCheckpoints({ faultInjection: true }));
    location = (await call("GET", `/api/v1/training_runs/${runId}/checkpoints/weights/a/archive`)).headers.get("location")!;
    full = Buffer.from(await (await fetch(location)).arrayBuffer());
  });
  after(async () => {
    await server.close();
  });

  test("status injection for the next N matching requests, with Retry-After", async () => {
    server.setFaults([{ path: "/api/v1/healthz", method: "GET", times: 2, status: 503, retryAfter: 2 }]);
    for (let i = 0; i < 2; i++) {
      const r = await call("GET", "/api/v1/healthz");
      assert.equal(r.status, 503);
      assert.deepEqual(r.body, { detail: "injected fault" });
      assert.equal(r.headers.get("retry-after"), "2");
      assert.ok(r.headers.get("x-request-id"));
    }
    assert.equal((await call("GET", "/api/v1/healthz")).status, 200);
    assert.equal(
      (
        await call("POST", "/api/v1/telemetry", {
          events: [],
          platform: "linux",
          sdk_version: "0.25.0",
          session_id: "s",
          process_uuid: "u",
        })
      ).status,
      200,
      "other paths are untouched",
    );
    server.clearFaults();
  });

  test("drop destroys the connection without an answer", async () => {
    server.setFaults([{ path: "/local/archives/", times: 1, drop: true }]);
    await assert.rejects(fetch(location));
    assert.equal((await fetch(location)).status, 200);
    server.clearFaults();
  });

  test("cutAfterBytes sends part of the body, then breaks the connection; Range resumes", async () => {
    server.setFaults([{ path: "/local/archives/", times: 1, cutAfterBytes: 1000 }]);
    const cut = await rawGet(location);
    assert.equal(cut.status, 200);
    assert.equal(Number(cut.headers["content-length"]), full.length);
    assert.equal(cut.complete, false);
    assert.equal(cut.body.length, 1000);
    assert.ok(cut.body.equals(full.subarray(0, 1000)));
    const rest = await rawGet(location, { range: `bytes=${cut.body.length}-` });
    assert.equal(rest.status, 206);
    assert.ok(Buffer.concat([cut.body, rest.body]).equals(full));
  });

  test("cutAfterBytes on a JSON answer", async () => {
    server.setFaults([{ path: "/api/v1/get_server_capabilities", times: 1, cutAfterBytes: 5 }]);
    const cut = await rawGet(`${server.baseUrl}/api/v1/get_server_capabilities`, { "x-api-key": server.apiKey });
    assert.equal(cut.complete, false);
    assert.equal(cut.body.toString(), '{"sup');
  });

  test("admin endpoint: POST rules (key required), DELETE clears; probability is deterministic", async () => {
    const noKey = await fetch(`${server.baseUrl}/local/admin/faults`, { method: "POST", body: JSON.stringify({ rules: [] }) });
    assert.equal(noKey.status, 401);
    const bad = await call("POST", "/local/admin/faults", { rules: [{ status: "x" }] });
    assert.equal(bad.status, 422);
    assert.equal(bad.body.field, "body.rules.0.status");

    const pattern = async (): Promise<number[]> => {
      const r = await call("POST", "/local/admin/faults", {
        rules: [{ path: "/api/v1/healthz", probability: 0.5, seed: 42, status: 500 }],
      });
      assert.deepEqual(r.body, { rules: 1 });
      const out: number[] = [];
      for (let i = 0; i < 20; i++) out.push((await call("GET", "/api/v1/healthz")).status);
      return out;
    };
    const a = await pattern();
    const b = await pattern();
    assert.deepEqual(a, b);
    assert.ok(a.includes(500) && a.includes(200), a.join(","));
    assert.equal((await call("DELETE", "/local/admin/faults")).status, 204);
    assert.equal((await call("GET", "/api/v1/healthz")).status, 200);
  });

  test("faults from the start option apply to the first requests", async () => {
    const s = await startLocalServer({ faults: [{ path: "/api/v1/", times: 1, status: 429, retryAfter: 1 }] });
    try {
      const c = api(s);
      assert.equal((await c("GET", "/api/v1/healthz")).status, 429);
      assert.equal((await c("GET", "/api/v1/healthz")).status, 200);
      assert.deepEqual(
        s.requests.map((r) => r.status),
        [429, 200],
      );
    } finally {
      await s.close();
    }
  });
});

/** Finds the stored directory of checkpoint `name` (any run) under the data dir. */
async function findCheckpointDir(dataDir: string, name: string): Promise<string> {
  const runs = join(dataDir, "runs");
  for (const run of await readdir(runs)) {
    const kindDir = join(runs, run, "checkpoints", "weights");
    for (const entry of await readdir(kindDir).catch(() => [] as string[])) {
      if (entry.startsWith(`${name}.`)) return join(kindDir, entry);
    }
  }
  throw new Error(`checkpoint ${name} not found on disk`);
}
