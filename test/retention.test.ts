/**
 * Retention helpers against the local server: keep-last-N planning (per type, olderThan), pruning with a dry
 * run, bounded concurrency and reported failures, and the rolling "just in case" checkpoint.
 * The server runs on a manual clock, so checkpoint times are exact and distinct.
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ConflictError,
  InvalidArgumentError,
  PermissionDeniedError,
  ServiceClient,
  startLocalServer,
  type LocalServer,
  type RestClient,
  type TrainingClient,
} from "../src/index.js";
import { planCheckpointPruning, pruneCheckpoints, RollingCheckpoint, type Checkpoint } from "../src/retention.js";

const BASE_MODEL = "Qwen/Qwen3-8B";
const HOUR = 3_600_000;
const T0 = Date.parse("2026-03-01T00:00:00.000Z");

describe("retention against the local server", () => {
  let server: LocalServer;
  let dataDir: string;
  let service: ServiceClient;
  let rest: RestClient;
  let now = T0;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "tinker-retention-"));
    server = await startLocalServer({ port: 0, dataDir, clock: () => now });
    service = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey, logger: { warn: () => {} } });
    rest = service.createRestClient();
  });
  after(async () => {
    await service.close();
    await server.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  /** Saves t1, s1, t2, s2, ... one hour apart (training `t<i>`, sampler `s<i>`), from T0. */
  async function seed(training: TrainingClient, names: string[]): Promise<Map<string, string>> {
    const paths = new Map<string, string>();
    for (const [i, name] of names.entries()) {
      now = T0 + i * HOUR;
      const { path } = await (name.startsWith("t") ? training.saveState(name) : training.saveWeightsForSampler(name));
      paths.set(name, path);
    }
    now = T0 + 24 * HOUR;
    return paths;
  }

  const names = (cs: Checkpoint[]): string[] => cs.map((c) => c.checkpoint_id.split("/")[1]!);
  async function listed(runId: string): Promise<string[]> {
    return names((await rest.listCheckpoints(runId)).checkpoints).sort();
  }

  test("plan: keepLast per type, or for one type only; olderThan spares newer ones; bytes sums what would go", async () => {
    const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 2 });
    // hours: t1 0, s1 1, t2 2, s2 3, t3 4, s3 5, t4 6
    await seed(training, ["t1", "s1", "t2", "s2", "t3", "s3", "t4"]);
    const all = (await rest.listCheckpoints(training.modelId)).checkpoints;
    const size = (ns: string[]): number => all.filter((c) => ns.includes(names([c])[0]!)).reduce((n, c) => n + (c.size_bytes ?? 0), 0);
    assert.ok(all.every((c) => (c.size_bytes ?? 0) > 0));

    const both = await planCheckpointPruning(rest, training.modelId, { keepLast: 2 });
    assert.deepEqual(names(both.keep), ["t4", "s3", "t3", "s2"]);
    assert.deepEqual(names(both.delete), ["t2", "s1", "t1"]);
    assert.equal(both.bytes, size(["t2", "s1", "t1"]));

    const training1 = await planCheckpointPruning(rest, training.modelId, { keepLast: 1, type: "training" });
    assert.deepEqual(names(training1.keep), ["t4"]);
    assert.deepEqual(names(training1.delete), ["t3", "t2", "t1"]);
    assert.equal(training1.bytes, size(["t3", "t2", "t1"]));

    const sampler0 = await planCheckpointPruning(rest, training.modelId, { keepLast: 0, type: "sampler" });
    assert.deepEqual(names(sampler0.keep), []);
    assert.deepEqual(names(sampler0.delete), ["s3", "s2", "s1"]);

    const older = await planCheckpointPruning(rest, training.modelId, { keepLast: 1, olderThan: new Date(T0 + 3.5 * HOUR) });
    assert.deepEqual(names(older.keep), ["t4", "s3", "t3"]);
    assert.deepEqual(names(older.delete), ["s2", "t2", "s1", "t1"]);
    assert.equal(older.bytes, size(["s2", "t2", "s1", "t1"]));

    assert.equal((await listed(training.modelId)).length, 7, "planning deletes nothing");
  });

  test("invalid options are rejected before any request", async () => {
    const last = server.requests.at(-1);
    const bad: unknown[] = [
      { keepLast: -1 },
      { keepLast: 1.5 },
      { keepLast: Number.NaN },
      { keepLast: "2" },
      {},
      { keepLast: 1, type: "weights" },
      { keepLast: 1, olderThan: new Date("nope") },
    ];
    for (const options of bad) {
      await assert.rejects(
        planCheckpointPruning(rest, "run-x", options as { keepLast: number }),
        InvalidArgumentError,
        JSON.stringify(options),
      );
      await assert.rejects(pruneCheckpoints(rest, "run-x", options as { keepLast: number }), InvalidArgumentError);
    }
    await assert.rejects(pruneCheckpoints(rest, "run-x", { keepLast: 1, concurrency: 0 }), InvalidArgumentError);
    const after = server.requests.slice(server.requests.indexOf(last!) + 1);
    assert.deepEqual(
      after.filter((r) => r.path.includes("/checkpoints")),
      [],
    );
  });

  test("prune: a dry run deletes nothing; then exactly the planned checkpoints go, and bytes is what was freed", async () => {
    const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 2 });
    await seed(training, ["t1", "s1", "t2", "s2", "t3"]);

    const dry = await pruneCheckpoints(rest, training.modelId, { keepLast: 1, dryRun: true });
    assert.deepEqual(names(dry.plan.delete), ["t2", "s1", "t1"]); // hours 2, 1, 0
    assert.deepEqual(dry.deleted, []);
    assert.deepEqual(dry.failed, []);
    assert.equal(dry.bytes, 0);
    assert.ok(dry.plan.bytes > 0);
    assert.deepEqual(await listed(training.modelId), ["s1", "s2", "t1", "t2", "t3"]);

    const result = await pruneCheckpoints(rest, training.modelId, { keepLast: 1, concurrency: 2 });
    assert.deepEqual(names(result.deleted), ["t2", "s1", "t1"]);
    assert.deepEqual(result.failed, []);
    assert.equal(result.bytes, dry.plan.bytes);
    assert.deepEqual(await listed(training.modelId), ["s2", "t3"]);
  });

  test("prune reports an individual failure instead of throwing, and deletes the rest", async () => {
    const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 2 });
    await seed(training, ["t1", "t2", "t3", "t4"]);
    server.setFaults([{ path: "/api/v1/training_runs/", method: "DELETE", times: 1, status: 403 }]);
    try {
      const result = await pruneCheckpoints(rest, training.modelId, { keepLast: 1, concurrency: 1 });
      assert.deepEqual(names(result.plan.delete), ["t3", "t2", "t1"]);
      assert.equal(result.failed.length, 1);
      assert.deepEqual(names(result.failed.map((f) => f.checkpoint)), ["t3"]);
      assert.ok(result.failed[0]!.error instanceof PermissionDeniedError);
      assert.deepEqual(names(result.deleted), ["t2", "t1"]);
      assert.equal(result.bytes, result.plan.bytes - (result.failed[0]!.checkpoint.size_bytes ?? 0));
      assert.deepEqual(await listed(training.modelId), ["t3", "t4"]);
    } finally {
      server.clearFaults();
    }
  });

  test("RollingCheckpoint keeps exactly one rolling checkpoint, deleting the predecessor only after the next save", async () => {
    const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 2 });
    await training.saveState("keep-me");
    const rolling = new RollingCheckpoint(training, rest, { prefix: "rolling", ttlSeconds: 2 * 86_400 });
    const base = `tinker://${training.modelId}/weights`;

    const r1 = await rolling.save();
    assert.deepEqual(r1, { path: `${base}/rolling-1`, deleted: [], deleteFailures: [] });
    const r2 = await rolling.save();
    assert.deepEqual(r2, {
      path: `${base}/rolling-2`,
      deletedPrevious: `${base}/rolling-1`,
      deleted: [`${base}/rolling-1`],
      deleteFailures: [],
    });
    const r3 = await rolling.save();
    assert.equal(r3.deletedPrevious, `${base}/rolling-2`);
    assert.equal(rolling.current, `${base}/rolling-3`);
    assert.deepEqual(await listed(training.modelId), ["keep-me", "rolling-3"]);
    const ttl = (await rest.listCheckpoints(training.modelId)).checkpoints.find((c) => c.checkpoint_id === "weights/rolling-3")?.expires_at;
    assert.equal(ttl, new Date(now + 2 * 86_400_000).toISOString());

    // The next name exists already: the save fails with a 409, and the previous rolling checkpoint stays.
    await training.saveState("rolling-4");
    await assert.rejects(rolling.save(), ConflictError);
    assert.equal(rolling.current, `${base}/rolling-3`);
    assert.deepEqual(await listed(training.modelId), ["keep-me", "rolling-3", "rolling-4"]);

    // The next save moves on to rolling-5 and removes rolling-3, never the foreign rolling-4.
    const r5 = await rolling.save();
    assert.equal(r5.path, `${base}/rolling-5`);
    assert.equal(r5.deletedPrevious, `${base}/rolling-3`);
    assert.deepEqual(await listed(training.modelId), ["keep-me", "rolling-4", "rolling-5"]);
  });

  test("RollingCheckpoint reports a failed deletion in the result and retries it at the next save", async () => {
    const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 2 });
    const rolling = new RollingCheckpoint(training, rest, { prefix: "snap" });
    const base = `tinker://${training.modelId}/weights`;
    await rolling.save();
    server.setFaults([{ path: "/api/v1/training_runs/", method: "DELETE", times: 1, status: 403 }]);
    let r2: Awaited<ReturnType<typeof rolling.save>>;
    try {
      r2 = await rolling.save();
    } finally {
      server.clearFaults();
    }
    assert.equal(r2.path, `${base}/snap-2`);
    assert.equal(r2.deletedPrevious, undefined);
    assert.deepEqual(r2.deleted, []);
    assert.equal(r2.deleteFailures.length, 1);
    assert.equal(r2.deleteFailures[0]!.path, `${base}/snap-1`);
    assert.ok(r2.deleteFailures[0]!.error instanceof PermissionDeniedError);
    assert.deepEqual(await listed(training.modelId), ["snap-1", "snap-2"]);

    const r3 = await rolling.save();
    assert.deepEqual(r3.deleted.sort(), [`${base}/snap-1`, `${base}/snap-2`]);
    assert.deepEqual(r3.deleteFailures, []);
    assert.deepEqual(await listed(training.modelId), ["snap-3"]);
  });

  test("RollingCheckpoint rejects a bad prefix or TTL at construction", async () => {
    const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 2 });
    assert.throws(() => new RollingCheckpoint(training, rest, { prefix: "a/b" }), /name/);
    assert.throws(() => new RollingCheckpoint(training, rest, { prefix: "" }), /prefix/);
    assert.throws(() => new RollingCheckpoint(training, rest, { ttlSeconds: 60 }), InvalidArgumentError);
  });
});
