/**
 * RestClient: every method against the bundled local server (and a crafted host for exact archive answers).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ConfigurationError, ConflictError, InternalServerError, NotFoundError } from "../src/core/errors.js";
import { InvalidTinkerPathError } from "../src/core/tinker-path.js";
import { Transport } from "../src/internal/transport.js";
import { RestClient, type PageProgress } from "../src/rest-client.js";
import { InvalidTtlError } from "../src/core/ttl.js";
import { startLocalServer, type LocalServer } from "../src/server/index.js";
import { startArchiveHost } from "./helpers/archive-host.js";
import { validCheckpointTar } from "./helpers/crafted-tar.js";
import { seedRun, type SeededRun } from "./helpers/seed-checkpoints.js";

const OTHER_KEY = "tml-other-user-key-0000";
const PAGER_KEY = "tml-pager-user-key-0000";

let server: LocalServer;
let rest: RestClient;
let run: SeededRun;

function restFor(baseUrl: string, apiKey: string, options: ConstructorParameters<typeof RestClient>[1] = {}): RestClient {
  return new RestClient(new Transport({ baseUrl, apiKey, maxRetries: 0 }), options);
}

function requestsTo(pathPart: string) {
  return server.requests.filter((r) => r.path.includes(pathPart));
}

before(async () => {
  server = await startLocalServer({ extraApiKeys: [OTHER_KEY, PAGER_KEY] });
  rest = restFor(server.baseUrl, server.apiKey);
  run = await seedRun(server.baseUrl, server.apiKey, {
    saves: [{ name: "a" }, { name: "b" }, { name: "s1", kind: "sampler_weights" }, { name: "c" }],
  });
});

after(async () => {
  await server.close();
});

describe("training runs", () => {
  test("getTrainingRun returns the validated wire object; the run id's ':' is sent raw", async () => {
    const r = await rest.getTrainingRun(run.runId);
    assert.equal(r.training_run_id, run.runId);
    assert.equal(r.base_model, "meta-llama/Llama-3.2-1B");
    assert.equal(r.is_lora, true);
    assert.equal(r.lora_rank, 4);
    assert.equal(r.last_checkpoint?.tinker_path, run.paths[3]);
    assert.equal(r.last_sampler_checkpoint?.checkpoint_id, "sampler_weights/s1");
    const seen = server.requests.filter((q) => q.method === "GET" && q.path === `/api/v1/training_runs/${run.runId}`).at(-1);
    assert.ok(seen?.url.includes(`/training_runs/${run.runId}`), seen?.url);
  });

  test("getTrainingRunByTinkerPath resolves the run; an invalid path sends nothing", async () => {
    const r = await rest.getTrainingRunByTinkerPath(run.paths[0]!);
    assert.equal(r.training_run_id, run.runId);
    const before = server.requests.length;
    await assert.rejects(rest.getTrainingRunByTinkerPath("tinker://only-two/parts"), InvalidTinkerPathError);
    assert.equal(server.requests.length, before);
  });

  test("a missing run is a NotFoundError", async () => {
    await assert.rejects(rest.getTrainingRun("nope:train:9"), NotFoundError);
  });

  test("listTrainingRuns pages with limit/offset and iterTrainingRuns pages lazily", async () => {
    const pager = restFor(server.baseUrl, PAGER_KEY);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await seedRun(server.baseUrl, PAGER_KEY)).runId);

    const page = await pager.listTrainingRuns({ limit: 2, offset: 2 });
    assert.equal(page.training_runs.length, 2);
    assert.deepEqual(page.cursor, { offset: 2, limit: 2, total_count: 5 });
    const listed = server.requests.filter((q) => q.path === "/api/v1/training_runs").at(-1);
    assert.match(listed?.url ?? "", /limit=2/);
    assert.match(listed?.url ?? "", /offset=2/);

    const mark = requestsTo("/api/v1/training_runs").length;
    const pages: PageProgress[] = [];
    const all: string[] = [];
    for await (const r of pager.iterTrainingRuns({ pageSize: 2, onPage: (p) => pages.push(p) })) all.push(r.training_run_id);
    assert.deepEqual([...all].sort(), [...ids].sort());
    assert.equal(new Set(all).size, 5);
    assert.equal(requestsTo("/api/v1/training_runs").length - mark, 3, "pages at offsets 0, 2, 4; the short page ends it");
    assert.deepEqual(
      pages.map((p) => [p.offset, p.count, p.totalCount]),
      [
        [0, 2, 5],
        [2, 2, 5],
        [4, 1, 5],
      ],
    );

    // Lazy: stopping early fetches no further pages.
    const mark2 = requestsTo("/api/v1/training_runs").length;
    let taken = 0;
    for await (const _ of pager.iterTrainingRuns({ pageSize: 2 })) if (++taken === 2) break;
    assert.equal(requestsTo("/api/v1/training_runs").length - mark2, 1);
  });

  test("accessScope selects owned or accessible runs", async () => {
    const other = restFor(server.baseUrl, OTHER_KEY);
    const shared = await seedRun(server.baseUrl, OTHER_KEY, { saves: [{ name: "pub" }] });
    await other.publishCheckpointFromTinkerPath(shared.paths[0]!);

    await assert.rejects(rest.getTrainingRun(shared.runId), NotFoundError);
    await assert.rejects(rest.getTrainingRun(shared.runId, { accessScope: "owned" }), NotFoundError);
    const seen = await rest.getTrainingRun(shared.runId, { accessScope: "accessible" });
    assert.equal(seen.training_run_id, shared.runId);
    const sent = server.requests.filter((q) => q.path === `/api/v1/training_runs/${shared.runId}`).at(-1);
    assert.match(sent?.url ?? "", /access_scope=accessible/);

    const owned = await rest.listTrainingRuns({ limit: 100 });
    assert.ok(!owned.training_runs.some((r) => r.training_run_id === shared.runId));
    const accessible = await rest.listTrainingRuns({ limit: 100, accessScope: "accessible" });
    assert.ok(accessible.training_runs.some((r) => r.training_run_id === shared.runId));
  });
});

describe("checkpoints", () => {
  test("listCheckpoints lists a run's checkpoints (no paging)", async () => {
    const { checkpoints, cursor } = await rest.listCheckpoints(run.runId);
    assert.deepEqual(
      checkpoints.map((c) => c.checkpoint_id),
      ["weights/a", "weights/b", "sampler_weights/s1", "weights/c"],
    );
    assert.ok(cursor === null || cursor === undefined);
    assert.ok(checkpoints.every((c) => typeof c.size_bytes === "number" && c.size_bytes > 0));
    assert.equal(checkpoints[2]?.checkpoint_type, "sampler");
  });

  test("listUserCheckpoints pages and iterUserCheckpoints walks every page, newest first", async () => {
    const page = await rest.listUserCheckpoints({ limit: 3, offset: 0 });
    assert.equal(page.checkpoints.length, 3);
    const total = page.cursor?.total_count ?? 0;
    assert.ok(total >= 4);

    const mark = requestsTo("/api/v1/checkpoints").length;
    const paths: string[] = [];
    for await (const c of rest.iterUserCheckpoints({ pageSize: 2 })) paths.push(c.tinker_path);
    assert.equal(paths.length, total);
    assert.equal(new Set(paths).size, total);
    for (const p of run.paths) assert.ok(paths.includes(p));
    assert.ok(paths.indexOf(run.paths[3]!) < paths.indexOf(run.paths[0]!), "newest first");
    assert.equal(requestsTo("/api/v1/checkpoints").length - mark, Math.ceil(total / 2));
  });

  test("rejects out-of-range paging before sending", async () => {
    const before = server.requests.length;
    await assert.rejects(rest.listUserCheckpoints({ limit: 0 }));
    await assert.rejects(rest.listTrainingRuns({ offset: -1 }));
    assert.equal(server.requests.length, before);
  });

  test("getWeightsInfoByTinkerPath returns the LoRA configuration", async () => {
    const info = await rest.getWeightsInfoByTinkerPath(run.paths[0]!);
    assert.deepEqual(
      { base_model: info.base_model, is_lora: info.is_lora, lora_rank: info.lora_rank },
      { base_model: "meta-llama/Llama-3.2-1B", is_lora: true, lora_rank: 4 },
    );
    const sent = server.requests.filter((q) => q.path === "/api/v1/weights_info").at(-1);
    assert.deepEqual(sent?.body, { tinker_path: run.paths[0] });
  });

  test("a missing checkpoint is a NotFoundError naming the path and suggesting expiry or deletion", async () => {
    const missing = `tinker://${run.runId}/weights/never-saved`;
    for (const call of [
      () => rest.getWeightsInfoByTinkerPath(missing),
      () => rest.getCheckpointArchiveUrlFromTinkerPath(missing),
      () => rest.deleteCheckpointFromTinkerPath(missing),
      () => rest.setCheckpointTtlFromTinkerPath(missing, 7200),
    ]) {
      await assert.rejects(call(), (err) => {
        assert.ok(err instanceof NotFoundError, String(err));
        assert.ok(err.message.includes(missing), err.message);
        assert.match(err.message, /expired or deleted\?/);
        assert.equal(err.status, 404);
        return true;
      });
    }
  });

  test("getCheckpointArchiveUrl reads the 302 without following it", async () => {
    const { url, expires } = await rest.getCheckpointArchiveUrl(run.runId, "weights/a");
    assert.ok(url.startsWith(`${server.baseUrl}/local/archives/`), url);
    const ms = Date.parse(expires) - Date.now();
    assert.ok(ms > 10 * 60_000 && ms <= 16 * 60_000, expires);
    assert.equal(new Date(expires).toISOString(), expires);
    const sent = server.requests.filter((q) => q.path.endsWith("/archive")).at(-1);
    assert.equal(sent?.path, `/api/v1/training_runs/${run.runId}/checkpoints/weights/a/archive`);
    assert.equal(sent?.status, 302);
    assert.ok(!server.requests.some((q) => q.path.startsWith("/local/archives/")), "the redirect was not followed");

    const viaPath = await rest.getCheckpointArchiveUrlFromTinkerPath(run.paths[2]!);
    assert.ok(viaPath.url.includes("/sampler_weights/s1"));
  });

  test("getCheckpointArchiveUrl accepts the 200 JSON form", async () => {
    const jsonServer = await startLocalServer({ archiveResponse: "json" });
    try {
      const seeded = await seedRun(jsonServer.baseUrl, jsonServer.apiKey, { saves: [{ name: "j" }] });
      const r = await restFor(jsonServer.baseUrl, jsonServer.apiKey).getCheckpointArchiveUrlFromTinkerPath(seeded.paths[0]!);
      assert.ok(r.url.startsWith(`${jsonServer.baseUrl}/local/archives/`));
      assert.ok(Date.parse(r.expires) > Date.now());
      assert.equal(jsonServer.requests.filter((q) => q.path.endsWith("/archive")).at(-1)?.status, 200);
    } finally {
      await jsonServer.close();
    }
  });

  test("retries 503 'still being generated' (bounded), reporting each pending attempt", async () => {
    const slow = await startLocalServer({ archiveGenerationDelayMs: 150 });
    try {
      const seeded = await seedRun(slow.baseUrl, slow.apiKey, { saves: [{ name: "g" }] });
      const client = restFor(slow.baseUrl, slow.apiKey, { archiveRetryDelayMs: 60 });
      const pending: number[] = [];
      const r = await client.getCheckpointArchiveUrlFromTinkerPath(seeded.paths[0]!, { onArchivePending: (n) => pending.push(n) });
      assert.ok(r.url.includes("/local/archives/"));
      assert.ok(pending.length >= 1);
      assert.deepEqual(
        pending,
        pending.map((_, i) => i + 1),
      );
      const archiveCalls = slow.requests.filter((q) => q.path.endsWith("/archive"));
      assert.equal(archiveCalls.length, pending.length + 1);
      assert.ok(archiveCalls.slice(0, -1).every((q) => q.status === 503));
    } finally {
      await slow.close();
    }
  });

  test("gives up after archiveMaxAttempts with a 503 InternalServerError", async () => {
    const host = await startArchiveHost();
    try {
      host.setArchive("tinker://r-1/weights/x", validCheckpointTar());
      host.plan.archiveStatuses = [503, 503, 503, 503];
      const client = restFor(host.apiUrl, "tml-crafted-key");
      const pending: number[] = [];
      await assert.rejects(
        client.getCheckpointArchiveUrl("r-1", "weights/x", { archiveMaxAttempts: 3, onArchivePending: (n) => pending.push(n) }),
        (err) => {
          assert.ok(err instanceof InternalServerError);
          assert.equal(err.status, 503);
          assert.match(err.message, /still being generated after 3 attempts/);
          return true;
        },
      );
      assert.deepEqual(pending, [1, 2]);
      assert.equal(host.apiRequests.length, 3);

      // Retry-After: 0 from the host, so the default delay is instant; then the 302 arrives.
      host.apiRequests.length = 0;
      host.plan.archiveStatuses = [503, 503];
      const r = await client.getCheckpointArchiveUrl("r-1", "weights/x");
      assert.ok(r.url.startsWith(`${host.downloadUrl}/dl/`));
      assert.equal(host.apiRequests.length, 3);
      assert.ok(host.apiRequests.every((q) => q.headers.accept === "application/json"));
      assert.equal(host.downloadRequests.length, 0, "the cross-origin redirect was not followed");
    } finally {
      await host.close();
    }
  });

  test("publish and unpublish toggle the public flag; a repeated publish is a ConflictError, not retried", async () => {
    const path = run.paths[1]!;
    await rest.publishCheckpointFromTinkerPath(path);
    let c = (await rest.listCheckpoints(run.runId)).checkpoints.find((x) => x.tinker_path === path);
    assert.equal(c?.public, true);

    const mark = requestsTo("/publish").length;
    await assert.rejects(rest.publishCheckpointFromTinkerPath(path), ConflictError);
    assert.equal(requestsTo("/publish").length - mark, 1);

    await rest.unpublishCheckpointFromTinkerPath(path);
    c = (await rest.listCheckpoints(run.runId)).checkpoints.find((x) => x.tinker_path === path);
    assert.equal(c?.public, false);
    await assert.rejects(rest.unpublishCheckpointFromTinkerPath(path), ConflictError);
  });

  test("setCheckpointTtlFromTinkerPath sets and removes the expiry; invalid TTLs are rejected before sending", async () => {
    const path = run.paths[0]!;
    await rest.setCheckpointTtlFromTinkerPath(path, 7200);
    let c = (await rest.listCheckpoints(run.runId)).checkpoints.find((x) => x.tinker_path === path);
    const left = Date.parse(c?.expires_at ?? "") - Date.now();
    assert.ok(left > 7000_000 && left <= 7200_000, String(c?.expires_at));
    assert.deepEqual(requestsTo("/ttl").at(-1)?.body, { ttl_seconds: 7200 });

    await rest.setCheckpointTtlFromTinkerPath(path, null);
    assert.deepEqual(requestsTo("/ttl").at(-1)?.body, { ttl_seconds: null });
    c = (await rest.listCheckpoints(run.runId)).checkpoints.find((x) => x.tinker_path === path);
    assert.equal(c?.expires_at ?? null, null);

    const mark = requestsTo("/ttl").length;
    for (const bad of [60, 3599, 3600.5, -1, Number.NaN]) {
      await assert.rejects(rest.setCheckpointTtlFromTinkerPath(path, bad), InvalidTtlError);
    }
    assert.equal(requestsTo("/ttl").length, mark, "nothing sent");
    await rest.setCheckpointTtlFromTinkerPath(path, 3600);
  });

  test("deleteCheckpoint splits 'weights/<name>' into the route; a second delete is NotFoundError", async () => {
    const extra = await seedRun(server.baseUrl, server.apiKey, { saves: [{ name: "doomed" }, { name: "doomed2" }] });
    await rest.deleteCheckpoint(extra.runId, "weights/doomed");
    const sent = requestsTo("/checkpoints/weights/doomed").at(-1);
    assert.equal(sent?.method, "DELETE");
    assert.equal(sent?.path, `/api/v1/training_runs/${extra.runId}/checkpoints/weights/doomed`);
    await assert.rejects(rest.deleteCheckpoint(extra.runId, "weights/doomed"), NotFoundError);
    await rest.deleteCheckpointFromTinkerPath(extra.paths[1]!);
    assert.deepEqual((await rest.listCheckpoints(extra.runId)).checkpoints, []);
    await assert.rejects(rest.deleteCheckpoint(extra.runId, "bogus/doomed"));
  });
});

describe("sessions", () => {
  test("getSession and listSessions", async () => {
    const s = await rest.getSession(run.sessionId);
    assert.deepEqual(s.training_run_ids, [run.runId]);
    assert.ok(Array.isArray(s.sampler_ids));
    const { sessions } = await rest.listSessions({ limit: 100 });
    assert.ok(sessions.includes(run.sessionId));
    const one = await rest.listSessions({ limit: 1, offset: 0, accessScope: "owned" });
    assert.equal(one.sessions.length, 1);
    assert.match(requestsTo("/api/v1/sessions").at(-1)?.url ?? "", /access_scope=owned/);
    await assert.rejects(rest.getSession("sess-missing"), NotFoundError);
  });
});

describe("construction", () => {
  test("fromEnv reads TINKER_BASE_URL/TINKER_API_KEY and explains how to start a server when missing", async () => {
    const fromEnv = RestClient.fromEnv({}, { TINKER_BASE_URL: server.baseUrl, TINKER_API_KEY: server.apiKey });
    assert.equal((await fromEnv.getTrainingRun(run.runId)).training_run_id, run.runId);
    assert.throws(
      () => RestClient.fromEnv({}, {}),
      (err) => {
        assert.ok(err instanceof ConfigurationError);
        assert.match(err.message, /tinker-ts serve/);
        return true;
      },
    );
  });
});
