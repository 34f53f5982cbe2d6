/**
 * The local server's state on disk: sessions, training runs and checkpoints, with an in-memory index of
 * their metadata (never of checkpoint bytes).
 *
 * Layout under the data directory:
 *
 * ```text
 * sessions/<id>.json                              one file per session
 * runs/<run>/run.json                             the training run (model) record
 * runs/<run>/checkpoints/<kind>/<name>.<gen>/     one checkpoint; <kind> is weights | sampler_weights
 *     adapter_config.json  adapter_model.safetensors  [optimizer.safetensors]  checkpoint_complete  metadata.json
 * tmp/                                            staging area for atomic writes (emptied at start-up)
 * archives/                                       cached tar archives (derived data, emptied at start-up)
 * ```
 *
 * Ids are stored with {@link encodeFileName}; a checkpoint name whose encoding is longer than 200
 * characters (e.g. many `.`, each `%2E`) is stored as `~<40 hex of its SHA-256>.<gen>` instead, since a file
 * name holds at most 255 bytes (its `metadata.json` has the name). Crash safety: a checkpoint is staged in `tmp/`, every file
 * is fsynced, the `checkpoint_complete` marker is written last, the staging directory is fsynced and then
 * renamed into place (and the parent fsynced). A checkpoint is only ever listed from its final location,
 * so a `kill -9` at any moment leaves it either absent or complete. Overwriting writes a new generation
 * `<name>.<gen+1>` and then removes the old one; start-up keeps the newest complete generation. Deleting
 * renames the directory into `tmp/` first, so it disappears atomically.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import {
  atomicWriteFile,
  decodeFileName,
  encodeFileName,
  fsyncPath,
  mkdirDurable,
  randomHex,
  writeFileSynced,
  type CheckpointKind,
} from "./util.js";

/** LoRA configuration of a training run or checkpoint. */
export type LoraInfo = {
  rank: number;
  seed: number;
  alpha: number;
  train_attn: boolean;
  train_mlp: boolean;
  train_unembed: boolean;
};

/** A persisted session. */
export type SessionRecord = {
  session_id: string;
  owner: string;
  created_at: number;
  tags: string[];
  user_metadata: Record<string, unknown>;
  project_id: string | null;
  sdk_version: string | null;
  sampler_ids: string[];
};

/** A persisted training run (a model). */
export type RunRecord = {
  training_run_id: string;
  owner: string;
  session_id: string | null;
  model_seq_id: number | null;
  base_model: string;
  lora: LoraInfo;
  user_metadata: Record<string, unknown> | null;
  created_at: number;
  last_request_time: number;
};

/** A persisted checkpoint's metadata (`metadata.json`). */
export type CheckpointRecord = {
  training_run_id: string;
  kind: CheckpointKind;
  name: string;
  owner: string;
  /** Creation time, epoch ms. */
  created_at: number;
  /** Generation; each overwrite creates a higher one. */
  gen: number;
  public: boolean;
  /** Expiry, epoch ms, or null for never. */
  expires_at: number | null;
  base_model: string;
  lora: LoraInfo;
  /** Total size of the checkpoint's files in bytes. */
  size_bytes: number;
  /** The checkpoint's files (what an archive contains), in archive order. */
  files: string[];
};

/** One file of a checkpoint being written: literal content, or a writer that creates `path` itself (and fsyncs it). */
export type CheckpointFileInput = { name: string; data: string | Uint8Array } | { name: string; write: (path: string) => Promise<void> };

/** Input of {@link Store.saveCheckpoint}. */
export type SaveCheckpointInput = {
  runId: string;
  kind: CheckpointKind;
  name: string;
  owner: string;
  overwrite: boolean;
  ttlSeconds: number | null;
  base_model: string;
  lora: LoraInfo;
  files: CheckpointFileInput[];
};

/** Thrown by {@link Store.saveCheckpoint} when the checkpoint exists and `overwrite` is false. */
export class CheckpointExistsError extends Error {
  /** Creates the error for checkpoint `kind/name` of `runId`. */
  constructor(runId: string, kind: CheckpointKind, name: string) {
    super(`checkpoint ${kind}/${name} already exists in run ${runId}; pass overwrite: true to replace it`);
    this.name = "CheckpointExistsError";
  }
}

/** The marker file written last into every checkpoint. */
export const COMPLETE_MARKER = "checkpoint_complete";
const METADATA_FILE = "metadata.json";
const KINDS: CheckpointKind[] = ["weights", "sampler_weights"];

type RunEntry = { record: RunRecord; checkpoints: Map<string, CheckpointRecord>; dirty: boolean };

/** Options of {@link Store.open}. */
export type StoreOptions = {
  /** Wall clock in epoch ms (for creation times and expiry). */
  clock: () => number;
  /** Diagnostic log. */
  log: (line: string) => void;
  /** Called when a checkpoint generation disappears (deleted, overwritten or expired). */
  onCheckpointRemoved?: (rec: CheckpointRecord) => void;
};

/** Sessions, runs and checkpoints on disk, with an in-memory metadata index. */
export class Store {
  /** Absolute data directory. */
  readonly dataDir: string;
  readonly #opts: StoreOptions;
  readonly #sessions = new Map<string, SessionRecord>();
  readonly #runs = new Map<string, RunEntry>();
  readonly #locks = new Map<string, Promise<unknown>>();
  #flushTimer: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(dataDir: string, opts: StoreOptions) {
    this.dataDir = dataDir;
    this.#opts = opts;
  }

  /** Opens (creating if needed) the data directory, cleans crash leftovers and loads the index. */
  static async open(dataDir: string, opts: StoreOptions): Promise<Store> {
    const store = new Store(dataDir, opts);
    await store.#load();
    return store;
  }

  /** Directory where temporary staging directories live. */
  get tmpDir(): string {
    return join(this.dataDir, "tmp");
  }

  /** Directory for derived archive files. */
  get archivesDir(): string {
    return join(this.dataDir, "archives");
  }

  /** Sets the callback invoked when a checkpoint generation is removed. */
  set onCheckpointRemoved(fn: ((rec: CheckpointRecord) => void) | undefined) {
    this.#opts.onCheckpointRemoved = fn;
  }

  #runDir(runId: string): string {
    return join(this.dataDir, "runs", encodeFileName(runId));
  }

  /** The directory holding checkpoint `rec`'s files. */
  checkpointDir(rec: CheckpointRecord): string {
    return join(this.#runDir(rec.training_run_id), "checkpoints", rec.kind, `${checkpointStem(rec.name)}.${rec.gen}`);
  }

  // ---------------------------------------------------------------------------------------------
  // Loading and cleaning
  // ---------------------------------------------------------------------------------------------

  async #load(): Promise<void> {
    await mkdirDurable(this.dataDir);
    // Staging leftovers of a crash and cached archives are disposable.
    await rm(this.tmpDir, { recursive: true, force: true });
    await rm(this.archivesDir, { recursive: true, force: true });
    for (const d of [this.tmpDir, this.archivesDir, join(this.dataDir, "sessions"), join(this.dataDir, "runs")]) {
      await mkdirDurable(d);
    }
    await this.#loadSessions();
    await this.#loadRuns();
    await this.sweepExpired();
  }

  async #loadSessions(): Promise<void> {
    const dir = join(this.dataDir, "sessions");
    for (const entry of await readdir(dir)) {
      const full = join(dir, entry);
      if (entry.includes(".tmp-")) {
        await rm(full, { force: true });
        continue;
      }
      if (!entry.endsWith(".json")) continue;
      try {
        const rec = JSON.parse(await readFile(full, "utf8")) as SessionRecord;
        if (typeof rec.session_id !== "string" || typeof rec.owner !== "string") throw new Error("malformed");
        rec.sampler_ids ??= [];
        this.#sessions.set(rec.session_id, rec);
      } catch (err) {
        this.#opts.log(`store: ignoring unreadable session file ${entry}: ${(err as Error).message}`);
      }
    }
  }

  async #loadRuns(): Promise<void> {
    const runsDir = join(this.dataDir, "runs");
    for (const entry of await readdir(runsDir)) {
      const runDir = join(runsDir, entry);
      if (decodeFileName(entry) === undefined) continue;
      for (const f of await readdir(runDir).catch(() => [] as string[])) {
        if (f.includes(".tmp-")) await rm(join(runDir, f), { force: true });
      }
      let record: RunRecord;
      try {
        record = JSON.parse(await readFile(join(runDir, "run.json"), "utf8")) as RunRecord;
        if (typeof record.training_run_id !== "string" || typeof record.owner !== "string") throw new Error("malformed");
      } catch {
        // A run directory without a readable run.json is a crash leftover of run creation.
        this.#opts.log(`store: removing incomplete run directory ${entry}`);
        await this.#trash(runDir);
        continue;
      }
      const run: RunEntry = { record, checkpoints: new Map(), dirty: false };
      this.#runs.set(record.training_run_id, run);
      for (const kind of KINDS) await this.#loadCheckpoints(run, kind);
    }
  }

  async #loadCheckpoints(run: RunEntry, kind: CheckpointKind): Promise<void> {
    const kindDir = join(this.#runDir(run.record.training_run_id), "checkpoints", kind);
    let entries: string[];
    try {
      entries = await readdir(kindDir);
    } catch {
      return;
    }
    // Keyed by the directory stem: the encoded name, or `~<digest>` for a long one.
    const found = new Map<string, Array<{ gen: number; dir: string; rec: CheckpointRecord | undefined }>>();
    for (const entry of entries) {
      const dir = join(kindDir, entry);
      const m = /^(~[0-9a-f]{40}|[A-Za-z0-9_%-]+)\.(\d+)$/.exec(entry);
      const name = m ? (m[1]!.startsWith("~") ? m[1]! : decodeFileName(m[1]!)) : undefined;
      if (!m || name === undefined) {
        await this.#trash(dir);
        continue;
      }
      const stem = m[1]!;
      let rec: CheckpointRecord | undefined;
      try {
        const files = await readdir(dir);
        for (const f of files) if (f.includes(".tmp-")) await rm(join(dir, f), { force: true });
        if (files.includes(COMPLETE_MARKER)) {
          rec = JSON.parse(await readFile(join(dir, METADATA_FILE), "utf8")) as CheckpointRecord;
          if (typeof rec.name !== "string" || checkpointStem(rec.name) !== stem || rec.gen !== Number(m[2]) || rec.kind !== kind)
            rec = undefined;
        }
      } catch {
        rec = undefined;
      }
      const list = found.get(stem) ?? [];
      list.push({ gen: Number(m[2]), dir, rec });
      found.set(stem, list);
    }
    for (const [stem, gens] of found) {
      gens.sort((a, b) => b.gen - a.gen);
      const keep = gens.find((g) => g.rec !== undefined);
      for (const g of gens) {
        if (g !== keep) {
          this.#opts.log(`store: removing ${g.rec ? "superseded" : "incomplete"} checkpoint directory ${kind}/${stem}.${g.gen}`);
          await this.#trash(g.dir);
        }
      }
      if (keep?.rec) run.checkpoints.set(`${kind}/${keep.rec.name}`, keep.rec);
    }
  }

  /** Renames `path` into tmp/ (atomic disappearance) and removes it. */
  async #trash(path: string): Promise<void> {
    const dest = join(this.tmpDir, `trash-${randomHex(8)}`);
    try {
      await rename(path, dest);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw err;
    }
    await fsyncPath(join(path, ".."));
    await rm(dest, { recursive: true, force: true });
  }

  async #withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(key) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.#locks.set(key, tail);
    try {
      return await run;
    } finally {
      if (this.#locks.get(key) === tail) this.#locks.delete(key);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Sessions
  // ---------------------------------------------------------------------------------------------

  /** Persists a new session. */
  async addSession(rec: SessionRecord): Promise<void> {
    await atomicWriteFile(join(this.dataDir, "sessions", `${encodeFileName(rec.session_id)}.json`), JSON.stringify(rec));
    this.#sessions.set(rec.session_id, rec);
  }

  /** Records a sampler id under a session (persisted). */
  async addSamplerToSession(sessionId: string, samplerId: string): Promise<void> {
    const rec = this.#sessions.get(sessionId);
    if (!rec || rec.sampler_ids.includes(samplerId)) return;
    const next = { ...rec, sampler_ids: [...rec.sampler_ids, samplerId] };
    await this.addSession(next);
  }

  /** The session with this id, if any. */
  session(id: string): SessionRecord | undefined {
    return this.#sessions.get(id);
  }

  /** Every session. */
  sessions(): SessionRecord[] {
    return [...this.#sessions.values()];
  }

  // ---------------------------------------------------------------------------------------------
  // Runs
  // ---------------------------------------------------------------------------------------------

  /** Persists a new training run (directory and `run.json`). */
  async addRun(rec: RunRecord): Promise<void> {
    const dir = this.#runDir(rec.training_run_id);
    await mkdirDurable(dir);
    await atomicWriteFile(join(dir, "run.json"), JSON.stringify(rec));
    this.#runs.set(rec.training_run_id, { record: rec, checkpoints: new Map(), dirty: false });
  }

  /** The run with this id, if any. */
  run(id: string): RunRecord | undefined {
    return this.#runs.get(id)?.record;
  }

  /** Every run. */
  runs(): RunRecord[] {
    return [...this.#runs.values()].map((r) => r.record);
  }

  /** Updates a run's last request time; persisted lazily (within about a second, and on close). */
  touchRun(id: string, time: number): void {
    const entry = this.#runs.get(id);
    if (!entry) return;
    entry.record.last_request_time = Math.max(entry.record.last_request_time, time);
    entry.dirty = true;
    if (this.#flushTimer === undefined && !this.#closed) {
      this.#flushTimer = setTimeout(() => {
        this.#flushTimer = undefined;
        this.flush().catch((err: unknown) => this.#opts.log(`store: flush failed: ${(err as Error).message}`));
      }, 1000);
      this.#flushTimer.unref();
    }
  }

  /** Writes every run whose last request time changed. */
  async flush(): Promise<void> {
    for (const entry of this.#runs.values()) {
      if (!entry.dirty) continue;
      entry.dirty = false;
      const id = entry.record.training_run_id;
      await this.#withLock(`run:${id}`, () => atomicWriteFile(join(this.#runDir(id), "run.json"), JSON.stringify(entry.record)));
    }
  }

  /** Flushes pending run updates and stops background timers. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#flushTimer !== undefined) clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    await this.flush();
  }

  // ---------------------------------------------------------------------------------------------
  // Checkpoints
  // ---------------------------------------------------------------------------------------------

  #expired(rec: CheckpointRecord): boolean {
    return rec.expires_at !== null && rec.expires_at <= this.#opts.clock();
  }

  /** The live (not expired) checkpoint `kind/name` of `runId`. */
  checkpoint(runId: string, kind: CheckpointKind, name: string): CheckpointRecord | undefined {
    const rec = this.#runs.get(runId)?.checkpoints.get(`${kind}/${name}`);
    return rec && !this.#expired(rec) ? rec : undefined;
  }

  /** The live checkpoints of a run, oldest first. */
  checkpointsOf(runId: string): CheckpointRecord[] {
    const entry = this.#runs.get(runId);
    if (!entry) return [];
    return [...entry.checkpoints.values()].filter((c) => !this.#expired(c)).sort(compareCheckpoints);
  }

  /** Every live checkpoint, oldest first. */
  allCheckpoints(): CheckpointRecord[] {
    const out: CheckpointRecord[] = [];
    for (const entry of this.#runs.values()) for (const c of entry.checkpoints.values()) if (!this.#expired(c)) out.push(c);
    return out.sort(compareCheckpoints);
  }

  /**
   * Writes a checkpoint crash-safely (see the module comment) and indexes it.
   *
   * @throws {CheckpointExistsError} when it exists and `overwrite` is false.
   */
  async saveCheckpoint(input: SaveCheckpointInput): Promise<CheckpointRecord> {
    const run = this.#runs.get(input.runId);
    if (!run) throw new Error(`unknown training run ${input.runId}`);
    return this.#withLock(`run:${input.runId}`, async () => {
      const key = `${input.kind}/${input.name}`;
      const existing = run.checkpoints.get(key);
      const existingLive = existing && !this.#expired(existing) ? existing : undefined;
      if (existingLive && !input.overwrite) throw new CheckpointExistsError(input.runId, input.kind, input.name);

      const stage = join(this.tmpDir, `ckpt-${randomHex(8)}`);
      await mkdir(stage);
      try {
        let size = 0;
        const files: string[] = [];
        for (const file of input.files) {
          const path = join(stage, file.name);
          if ("data" in file) await writeFileSynced(path, file.data);
          else await file.write(path);
          size += (await stat(path)).size;
          files.push(file.name);
        }
        const now = this.#opts.clock();
        const markerContent = `${JSON.stringify({ complete: true, time: new Date(now).toISOString() })}\n`;
        size += Buffer.byteLength(markerContent);
        files.push(COMPLETE_MARKER);
        const gen = Math.max((existing?.gen ?? 0) + 1, now);
        const rec: CheckpointRecord = {
          training_run_id: input.runId,
          kind: input.kind,
          name: input.name,
          owner: input.owner,
          created_at: now,
          gen,
          public: false,
          expires_at: input.ttlSeconds === null ? null : now + input.ttlSeconds * 1000,
          base_model: input.base_model,
          lora: input.lora,
          size_bytes: size,
          files,
        };
        await writeFileSynced(join(stage, METADATA_FILE), JSON.stringify(rec));
        await writeFileSynced(join(stage, COMPLETE_MARKER), markerContent);
        await fsyncPath(stage);
        const finalDir = this.checkpointDir(rec);
        await mkdirDurable(join(finalDir, ".."));
        await rename(stage, finalDir);
        await fsyncPath(join(finalDir, ".."));
        await fsyncPath(this.tmpDir);
        run.checkpoints.set(key, rec);
        if (existing) {
          await this.#trash(this.checkpointDir(existing));
          this.#opts.onCheckpointRemoved?.(existing);
        }
        return rec;
      } catch (err) {
        await rm(stage, { recursive: true, force: true });
        throw err;
      }
    });
  }

  /** Changes a checkpoint's `public` flag or expiry (metadata rewritten atomically). */
  async updateCheckpoint(rec: CheckpointRecord, patch: { public?: boolean; expires_at?: number | null }): Promise<CheckpointRecord> {
    return this.#withLock(`run:${rec.training_run_id}`, async () => {
      const run = this.#runs.get(rec.training_run_id);
      const current = run?.checkpoints.get(`${rec.kind}/${rec.name}`);
      if (!run || !current || current.gen !== rec.gen) throw new Error("checkpoint changed concurrently");
      const next: CheckpointRecord = { ...current, ...patch };
      await atomicWriteFile(join(this.checkpointDir(next), METADATA_FILE), JSON.stringify(next));
      run.checkpoints.set(`${rec.kind}/${rec.name}`, next);
      return next;
    });
  }

  /** Deletes a checkpoint (it disappears atomically, then its files are removed). */
  async deleteCheckpoint(rec: CheckpointRecord): Promise<void> {
    await this.#withLock(`run:${rec.training_run_id}`, async () => {
      const run = this.#runs.get(rec.training_run_id);
      const key = `${rec.kind}/${rec.name}`;
      const current = run?.checkpoints.get(key);
      if (!run || !current) return;
      await this.#trash(this.checkpointDir(current));
      run.checkpoints.delete(key);
      this.#opts.onCheckpointRemoved?.(current);
    });
  }

  /** Removes expired checkpoints from disk; returns how many. */
  async sweepExpired(): Promise<number> {
    let n = 0;
    for (const run of this.#runs.values()) {
      for (const rec of [...run.checkpoints.values()]) {
        if (this.#expired(rec)) {
          await this.deleteCheckpoint(rec);
          n++;
        }
      }
    }
    if (n > 0) this.#opts.log(`store: removed ${n} expired checkpoint(s)`);
    return n;
  }

  /** Reads one file of a checkpoint. */
  async readCheckpointFile(rec: CheckpointRecord, file: string): Promise<Buffer> {
    return readFile(join(this.checkpointDir(rec), file));
  }

  /** Size of one file of a checkpoint, or undefined if it is absent. */
  async checkpointFileSize(rec: CheckpointRecord, file: string): Promise<number | undefined> {
    try {
      return (await stat(join(this.checkpointDir(rec), file))).size;
    } catch {
      return undefined;
    }
  }
}

/** Orders checkpoints by creation time, then generation, then id. */
function compareCheckpoints(a: CheckpointRecord, b: CheckpointRecord): number {
  return a.created_at - b.created_at || a.gen - b.gen || `${a.kind}/${a.name}`.localeCompare(`${b.kind}/${b.name}`);
}

/** Longest encoded checkpoint name used as a directory name as is. */
const MAX_ENCODED_NAME = 200;

/** The directory name (without `.<gen>`) of checkpoint `name`: its encoding, or `~<digest>` when that is too long. */
function checkpointStem(name: string): string {
  const encoded = encodeFileName(name);
  return encoded.length <= MAX_ENCODED_NAME ? encoded : `~${createHash("sha256").update(name).digest("hex").slice(0, 40)}`;
}
