/**
 * The resume ledger (cookbook `checkpoints.jsonl` format) on real files, and resumeOrStart / saveAndRecord
 * against the local server.
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ConflictError,
  InvalidArgumentError,
  ServiceClient,
  startLocalServer,
  TinkerError,
  type LocalServer,
  type TrainingClient,
} from "../src/index.js";
import { BASE_MODEL, trainSteps as trainStepsWith } from "./helpers/training.js";
import { CheckpointLedger, LedgerFormatError, resumeOrStart, saveAndRecord, type LedgerRecord } from "../src/ledger.js";

const trainSteps = (t: TrainingClient, from: number, count: number): Promise<number[]> => trainStepsWith(t, from, count, 3, 10);

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

describe("CheckpointLedger (files only)", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "tinker-ledger-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test("open does no I/O; a missing file has no records", async () => {
    const path = join(dir, "missing", "sub", "checkpoints.jsonl");
    const ledger = CheckpointLedger.open(path);
    assert.equal(ledger.path, path);
    assert.equal(await exists(join(dir, "missing")), false);
    assert.deepEqual(await ledger.records(), []);
    assert.equal(await ledger.latest(), undefined);
    assert.equal(await ledger.latest({ withState: true }), undefined);
    assert.equal(await exists(join(dir, "missing")), false);
  });

  test("append/read round trip: one snake_case JSON object per line, unknown keys kept, parent dirs created", async () => {
    const path = join(dir, "round", "trip", "checkpoints.jsonl");
    const ledger = CheckpointLedger.open(path);
    const a: LedgerRecord = {
      name: "000010",
      epoch: 0,
      batch: 10,
      state_path: "tinker://run-1:train:0/weights/000010",
      lr: 1e-4,
      metrics: { loss: 1.5 },
    };
    const b: LedgerRecord = {
      name: "000020",
      epoch: 0,
      batch: 20,
      sampler_path: "tinker://run-1:train:0/sampler_weights/000020",
      time: "2026-01-02T03:04:05.000Z",
    };
    const c: LedgerRecord = {
      name: "final",
      state_path: "tinker://run-1:train:0/weights/final",
      sampler_path: "tinker://run-1:train:0/sampler_weights/final",
      tags: ["x"],
    };
    await ledger.append(a);
    await Promise.all([ledger.append(b), ledger.append(c)]); // serialised, in call order
    const text = await readFile(path, "utf8");
    const lines = text.split("\n");
    assert.equal(lines.length, 4);
    assert.equal(lines[3], "");
    assert.deepEqual(
      lines.slice(0, 3).map((l) => JSON.parse(l) as unknown),
      [a, b, c],
    );
    assert.deepEqual(await ledger.records(), [a, b, c]);
    assert.deepEqual(await ledger.latest(), c);
    assert.deepEqual(await ledger.latest({ withState: true }), c);
    // A second ledger object on the same file (another process) sees the same records.
    assert.deepEqual(await CheckpointLedger.open(path).records(), [a, b, c]);
  });

  test("cookbook-written files read as expected: latest({ withState }) skips records without a state_path; nulls mean absent", async () => {
    const path = join(dir, "cookbook.jsonl");
    await writeFile(
      path,
      [
        '{"name": "000005", "epoch": 0, "batch": 5, "state_path": "tinker://r/weights/000005", "sampler_path": "tinker://r/sampler_weights/000005"}',
        "",
        '{"name": "000010", "epoch": 0, "batch": 10, "sampler_path": "tinker://r/sampler_weights/000010", "state_path": null}',
        "",
      ].join("\r\n"),
    );
    const ledger = CheckpointLedger.open(path);
    assert.equal((await ledger.records()).length, 2);
    assert.equal((await ledger.latest())?.name, "000010");
    assert.equal("state_path" in ((await ledger.latest()) ?? {}), false);
    assert.equal((await ledger.latest({ withState: true }))?.name, "000005");
  });

  test("a torn last line (crash mid-append) is ignored, and the next append replaces it", async () => {
    const path = join(dir, "torn.jsonl");
    const good = '{"name":"a","state_path":"tinker://r/weights/a"}\n{"name":"b","state_path":"tinker://r/weights/b"}\n';
    await writeFile(path, `${good}{"name":"c","state_pa`);
    const ledger = CheckpointLedger.open(path);
    assert.deepEqual(
      (await ledger.records()).map((r) => r.name),
      ["a", "b"],
    );
    assert.equal((await ledger.latest({ withState: true }))?.name, "b");
    await ledger.append({ name: "c", state_path: "tinker://r/weights/c" });
    assert.equal(await readFile(path, "utf8"), `${good}{"name":"c","state_path":"tinker://r/weights/c"}\n`);
    assert.deepEqual(
      (await ledger.records()).map((r) => r.name),
      ["a", "b", "c"],
    );
  });

  test("a complete last record without its newline is read, and kept by the next append", async () => {
    const path = join(dir, "no-newline.jsonl");
    await writeFile(path, '{"name":"a"}\n{"name":"b","x":1}');
    const ledger = CheckpointLedger.open(path);
    assert.deepEqual(await ledger.records(), [{ name: "a" }, { name: "b", x: 1 }]);
    await ledger.append({ name: "c" });
    assert.equal(await readFile(path, "utf8"), '{"name":"a"}\n{"name":"b","x":1}\n{"name":"c"}\n');
  });

  test("a malformed line in the middle is a LedgerFormatError naming the file and line", async () => {
    const cases: Array<[string, number, RegExp]> = [
      ['{"name":"a"}\nnot json\n{"name":"c"}\n', 2, /not valid JSON/],
      ['{"name":"a"}\n\n{"nom":"b"}\n{"name":"c"}\n', 3, /"name" must be a non-empty string/],
      ['[1,2]\n{"name":"c"}\n', 1, /expected a JSON object, got an array/],
      ['{"name":"a","epoch":"one"}\n{"name":"c"}\n', 1, /"epoch" must be a number/],
      // Terminated by a newline: complete, so damaged rather than torn.
      ['{"name":"a"}\n{"name":"b",\n', 2, /not valid JSON/],
    ];
    for (const [i, [content, line, reason]] of cases.entries()) {
      const path = join(dir, `bad-${i}.jsonl`);
      await writeFile(path, content);
      await assert.rejects(CheckpointLedger.open(path).records(), (err: unknown) => {
        assert.ok(err instanceof LedgerFormatError, String(err));
        assert.ok(err instanceof TinkerError);
        assert.equal(err.line, line);
        assert.equal(err.path, path);
        assert.ok(err.message.includes(`${path}, line ${line}:`), err.message);
        assert.match(err.message, reason);
        return true;
      });
      await assert.rejects(CheckpointLedger.open(path).latest({ withState: true }), LedgerFormatError);
    }
  });

  test("invalid records are rejected with InvalidArgumentError before anything is written", async () => {
    const path = join(dir, "validate.jsonl");
    const ledger = CheckpointLedger.open(path);
    const fresh = CheckpointLedger.open(join(dir, "validate-new", "c.jsonl"));
    await ledger.append({ name: "ok", state_path: "tinker://r/weights/ok" });
    const before = await readFile(path);
    const bad: unknown[] = [
      { name: "" },
      { state_path: "tinker://r/weights/x" },
      { name: "x", state_path: "tinker://r/sampler_weights/x" },
      { name: "x", sampler_path: "tinker://r/weights/x" },
      { name: "x", state_path: "weights/x" },
      { name: "x", state_path: "tinker://r/bogus/x" },
      { name: "x", state_path: 42 },
      { name: "x", epoch: -1 },
      { name: "x", batch: 1.5 },
      { name: "x", time: "yesterday" },
      { name: "x", big: 10n },
      null,
      "name",
    ];
    for (const record of bad) {
      await assert.rejects(
        ledger.append(record as LedgerRecord),
        InvalidArgumentError,
        JSON.stringify(record, (_k, v: unknown) => (typeof v === "bigint" ? "10n" : v)),
      );
      await assert.rejects(fresh.append(record as LedgerRecord), InvalidArgumentError);
    }
    assert.deepEqual(await readFile(path), before);
    assert.equal(await exists(join(dir, "validate-new")), false);
  });
});

describe("resumeOrStart and saveAndRecord against the local server", () => {
  let server: LocalServer;
  let dataDir: string;
  let dir: string;
  let service: ServiceClient;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "tinker-ledger-srv-"));
    dir = await mkdtemp(join(tmpdir(), "tinker-ledger-files-"));
    server = await startLocalServer({ port: 0, dataDir });
    service = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey, logger: { warn: () => {} } });
  });
  after(async () => {
    await service.close();
    await server.close();
    await rm(dataDir, { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
  });

  function loadsOf(modelId: string): unknown[] {
    return server.requests
      .filter((r) => r.path === "/api/v1/load_weights" && (r.body as { model_id?: string }).model_id === modelId)
      .map((r) => (r.body as { optimizer?: unknown }).optimizer);
  }

  test("fresh: a missing ledger, an empty one, or one without any state_path starts a new model with the given config", async () => {
    const missing = join(dir, "fresh", "missing.jsonl");
    const r1 = await resumeOrStart(service, { ledger: missing, baseModel: BASE_MODEL, rank: 4, seed: 1 });
    assert.equal(r1.mode, "fresh");
    assert.equal(r1.from, undefined);
    assert.equal((await r1.training.getInfo()).lora_rank, 4);
    assert.deepEqual(loadsOf(r1.training.modelId), []);

    const empty = join(dir, "fresh-empty.jsonl");
    await writeFile(empty, "");
    const r2 = await resumeOrStart(service, { ledger: CheckpointLedger.open(empty), baseModel: BASE_MODEL, rank: 2 });
    assert.equal(r2.mode, "fresh");
    assert.equal((await r2.training.getInfo()).lora_rank, 2);

    const samplerOnly = CheckpointLedger.open(join(dir, "fresh-sampler.jsonl"));
    await samplerOnly.append({ name: "s", sampler_path: "tinker://r/sampler_weights/s" });
    assert.equal((await resumeOrStart(service, { ledger: samplerOnly, baseModel: BASE_MODEL, rank: 2 })).mode, "fresh");
    assert.equal(await exists(join(dir, "fresh")), false, "reading creates nothing");
  });

  test("bad options are rejected before any request", async () => {
    await assert.rejects(resumeOrStart(service, { ledger: join(dir, "x.jsonl"), baseModel: "" }), InvalidArgumentError);
    await assert.rejects(
      resumeOrStart(service, { ledger: join(dir, "x.jsonl"), baseModel: BASE_MODEL, warmStartPath: "tinker://r/sampler_weights/s" }),
      /training checkpoint/,
    );
  });

  test("warm-start: weights only from warmStartPath when the ledger has nothing to resume; the checkpoint's base model wins", async () => {
    const source = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 4, seed: 5 });
    await trainSteps(source, 0, 1);
    const { path } = await source.saveState("warm-source");
    const warnings: string[] = [];
    const r = await resumeOrStart(service, {
      ledger: join(dir, "warm.jsonl"),
      baseModel: "meta-llama/Llama-3.2-1B",
      rank: 16,
      warmStartPath: path,
      logger: { warn: (m) => warnings.push(m) },
    });
    assert.equal(r.mode, "warm-start");
    assert.equal(r.path, path);
    assert.equal(r.from, undefined);
    assert.deepEqual(loadsOf(r.training.modelId), [false]);
    assert.equal(r.training.baseModel, BASE_MODEL);
    assert.equal((await r.training.getInfo()).lora_rank, 4, "rank comes from the checkpoint");
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /Llama-3\.2-1B/);
  });

  test("resumed: from the latest record with a state_path, with optimizer state — the same losses as the original continuing", async () => {
    const ledger = CheckpointLedger.open(join(dir, "resume", "checkpoints.jsonl"));
    const start = await resumeOrStart(service, { ledger, baseModel: BASE_MODEL, rank: 4, seed: 7 });
    assert.equal(start.mode, "fresh");
    const original = start.training;
    await trainSteps(original, 0, 2);
    const record = await saveAndRecord(original, ledger, "step-2", { extra: { epoch: 0, batch: 1, step: 2, note: "kept" } });
    assert.equal(record.state_path, `tinker://${original.modelId}/weights/step-2`);
    await ledger.append({ name: "sampler-only", sampler_path: `tinker://${original.modelId}/sampler_weights/later` });
    const continued = await trainSteps(original, 2, 2);

    const r = await resumeOrStart(service, { ledger, baseModel: BASE_MODEL, warmStartPath: record.state_path! });
    assert.equal(r.mode, "resumed");
    assert.equal(r.path, record.state_path);
    assert.deepEqual(r.from, record);
    assert.equal(r.from?.note, "kept");
    assert.deepEqual(loadsOf(r.training.modelId), [true]);
    const resumed = await trainSteps(r.training, 2, 2);
    assert.deepEqual(resumed, continued, "bit-identical losses after resuming with optimizer state");
  });

  test("saveAndRecord records the saved paths (and sampler weights), and nothing when the save fails", async () => {
    const ledger = CheckpointLedger.open(join(dir, "save", "checkpoints.jsonl"));
    const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 2 });
    const before = Date.now();
    const rec = await saveAndRecord(training, ledger, "both", { sampler: true, extra: { epoch: 3 } });
    assert.equal(rec.name, "both");
    assert.equal(rec.epoch, 3);
    assert.equal(rec.state_path, `tinker://${training.modelId}/weights/both`);
    assert.equal(rec.sampler_path, `tinker://${training.modelId}/sampler_weights/both`);
    assert.ok(Date.parse(rec.time!) >= before - 1000);
    const listed = (await service.createRestClient().listCheckpoints(training.modelId)).checkpoints.map((c) => c.tinker_path).sort();
    assert.deepEqual(listed, [rec.sampler_path, rec.state_path].sort());
    assert.deepEqual(await ledger.records(), [rec]);

    const snapshot = await readFile(ledger.path, "utf8");
    await assert.rejects(saveAndRecord(training, ledger, "both", { extra: { epoch: 4 } }), ConflictError);
    assert.equal(await readFile(ledger.path, "utf8"), snapshot, "a failed save leaves the ledger unchanged");

    // Invalid input: rejected before a save is sent.
    const saves = (): number => server.requests.filter((r) => r.path === "/api/v1/save_weights").length;
    const sent = saves();
    await assert.rejects(saveAndRecord(training, ledger, "x", { extra: { state_path: "tinker://r/weights/x" } }), InvalidArgumentError);
    await assert.rejects(saveAndRecord(training, ledger, "x", { extra: { epoch: -2 } }), InvalidArgumentError);
    await assert.rejects(saveAndRecord(training, ledger, "x", { ttlSeconds: 60 }), InvalidArgumentError);
    assert.equal(saves(), sent);
    assert.equal(await readFile(ledger.path, "utf8"), snapshot);

    const replaced = await saveAndRecord(training, ledger, "both", { overwrite: true, extra: { epoch: 4 } });
    assert.deepEqual(
      (await ledger.records()).map((r) => r.epoch),
      [3, 4],
    );
    assert.equal(replaced.state_path, rec.state_path);
  });

  test("a short TTL on a recorded checkpoint draws a warning; 7 days or none does not", async () => {
    const ledger = CheckpointLedger.open(join(dir, "ttl.jsonl"));
    const training = await service.createLoraTrainingClient({ baseModel: BASE_MODEL, rank: 2 });
    const warnings: string[] = [];
    const logger = { warn: (m: string) => warnings.push(m) };
    await saveAndRecord(training, ledger, "short", { ttlSeconds: 3600, logger });
    assert.equal(warnings.length, 1);
    assert.ok(warnings[0]!.includes(`tinker://${training.modelId}/weights/short`), warnings[0]);
    assert.ok(warnings[0]!.includes(ledger.path));
    assert.match(warnings[0]!, /7 days/);
    await saveAndRecord(training, ledger, "week", { ttlSeconds: 7 * 86_400, logger });
    await saveAndRecord(training, ledger, "forever", { logger });
    assert.equal(warnings.length, 1);
  });
});
