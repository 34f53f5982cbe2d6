/**
 * A resume ledger: the `checkpoints.jsonl` file the Tinker cookbooks keep per run (one JSON object per line,
 * `name`, `epoch`/`batch`, `state_path`, `sampler_path`, extra keys kept), and the helpers built on it:
 * {@link resumeOrStart} (resume with optimizer from the ledger, else warm-start, else start fresh) and
 * {@link saveAndRecord} (save, then record only what was actually saved).
 *
 * @module
 */
import { mkdir, open, readFile, stat, type FileHandle } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { InvalidArgumentError, TinkerError } from "./core/errors.js";
import { parseTinkerPath, validateCheckpointName } from "./core/tinker-path.js";
import { validateTtlSeconds } from "./core/ttl.js";
import type { CreateLoraTrainingClientOptions, Logger, ServiceClient } from "./service-client.js";
import type { TrainingClient } from "./training-client.js";
import type { RequestOptions } from "./core/options.js";
import { requestOptionsOf } from "./internal/request-options.js";
import { Log } from "./internal/log.js";

/**
 * One line of a ledger (snake_case, as the cookbooks write it). Keys this type does not name are kept as they
 * are, on read and on write.
 */
export interface LedgerRecord {
  /** The checkpoint name, e.g. `"000120"` or `"final"`. */
  name: string;
  /** The training checkpoint (weights and optimizer state): `tinker://<run>/weights/<name>`. */
  state_path?: string;
  /** The sampler checkpoint (weights only): `tinker://<run>/sampler_weights/<name>`. */
  sampler_path?: string;
  /** Epoch the checkpoint was taken in. */
  epoch?: number;
  /** Batch index the checkpoint was taken at. */
  batch?: number;
  /** Optimizer step count at the checkpoint. */
  step?: number;
  /** When the record was written, ISO 8601. */
  time?: string;
  /** Any other key (learning rate, metrics, ...), kept unchanged. */
  [key: string]: unknown;
}

/** Options of the ledger's file operations. They touch only the local file, never the server. */
export interface LedgerFileOptions {
  /** Aborts before the file is touched (an `AbortError` from Node). */
  signal?: AbortSignal;
}

/** Options of {@link CheckpointLedger.latest}. */
export interface LedgerLatestOptions extends LedgerFileOptions {
  /** Only records with a `state_path` (a checkpoint training can resume from). Default false. */
  withState?: boolean;
}

/**
 * A ledger line (not the last one) that is not a valid record: the file was edited or damaged. The message
 * names the file and the line; {@link path} and {@link line} hold them.
 *
 * @example
 * ```ts
 * try {
 *   await ledger.records();
 * } catch (err) {
 *   if (err instanceof LedgerFormatError) console.error(`fix ${err.path}:${err.line}`);
 * }
 * ```
 */
export class LedgerFormatError extends TinkerError {
  override name: string = "LedgerFormatError";
  /** The ledger file. */
  readonly path: string;
  /** The 1-based line number of the bad line. */
  readonly line: number;

  /** Builds the error for `path:line`, saying why the line was rejected. */
  constructor(path: string, line: number, reason: string, options?: ErrorOptions) {
    super(
      `Checkpoint ledger ${path}, line ${line}: ${reason}. Each line must be one JSON object with a string "name" ` +
        `(e.g. {"name":"000120","state_path":"tinker://<run>/weights/000120"}); fix or remove that line.`,
      options,
    );
    this.path = path;
    this.line = line;
  }
}

const KNOWN_NUMBER_KEYS = ["epoch", "batch", "step"] as const;
const PATH_KEYS = ["state_path", "sampler_path"] as const;
const TAIL_CHUNK = 64 * 1024;

/**
 * A resume ledger in the cookbooks' `checkpoints.jsonl` format: one JSON record per line, appended durably
 * (write, fsync) so that a record never names a checkpoint that was not saved, and read back tolerating a
 * record torn by a crash mid-append.
 *
 * @example
 * ```ts
 * const ledger = CheckpointLedger.open("runs/exp-1/checkpoints.jsonl");
 * const saved = await training.saveState("000100");
 * await ledger.append({ name: "000100", epoch: 0, batch: 100, state_path: saved.path });
 * const last = await ledger.latest({ withState: true }); // the record to resume from
 * ```
 */
export class CheckpointLedger {
  /** The ledger file (absolute). */
  readonly path: string;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(path: string) {
    this.path = path;
  }

  /**
   * A ledger over the file at `path`. Does no I/O: a missing file reads as empty, and the first append creates
   * it (and its parent directories).
   *
   * @throws {InvalidArgumentError} when `path` is not a non-empty string.
   * @example
   * ```ts
   * import { join } from "node:path";
   *
   * const logDir = "runs/exp-1";
   * const ledger = CheckpointLedger.open(join(logDir, "checkpoints.jsonl"));
   * ```
   */
  static open(path: string): CheckpointLedger {
    if (typeof path !== "string" || path.trim() === "") {
      throw new InvalidArgumentError(`CheckpointLedger.open needs a file path, got ${JSON.stringify(path)}.`);
    }
    return new CheckpointLedger(resolve(path));
  }

  /**
   * Validates `record` and appends it as one line: the file is opened for appending, the line written in one
   * write, fsynced and closed (a new file's directory is fsynced too). If a crash left a torn last line, it is
   * removed first (readers ignore it anyway). Appends from one ledger object are serialised.
   *
   * Checked before anything is written: `name` is a non-empty string; `state_path`, if present, is a
   * `tinker://<run>/weights/<name>` path and `sampler_path` a `tinker://<run>/sampler_weights/<name>` path;
   * `epoch`, `batch` and `step` are whole numbers ≥ 0; `time` is a date string; the record is JSON.
   *
   * @returns the record as written.
   * @throws {InvalidArgumentError} for an invalid record; the file is unchanged.
   * @throws {Error} from Node's file system when the file cannot be written.
   * @example
   * ```ts
   * await ledger.append({
   *   name: "000200",
   *   epoch: 1,
   *   batch: 200,
   *   state_path: "tinker://run-1/weights/000200",
   *   sampler_path: "tinker://run-1/sampler_weights/000200",
   *   lr: 1e-4, // extra keys are kept
   * });
   * ```
   */
  append(record: LedgerRecord, options: LedgerFileOptions = {}): Promise<LedgerRecord> {
    let line: string;
    try {
      validateRecord(record, true);
      line = serialize(record);
    } catch (err) {
      return Promise.reject(err);
    }
    const run = this.#queue.then(() => this.#append(line, options));
    this.#queue = run.catch(() => undefined);
    return run.then(() => record);
  }

  /**
   * Reads every record, in file order. A missing file has no records. Blank lines are skipped; a last line
   * that is incomplete (no final newline) and not valid JSON, as a crash mid-append leaves it, is ignored.
   *
   * @throws {LedgerFormatError} naming the file and line when any other line is not a JSON object with a
   *   string `name`, or a known key has the wrong type.
   * @example
   * ```ts
   * for (const r of await ledger.records()) console.log(r.name, r.state_path ?? "-");
   * ```
   */
  async records(options: LedgerFileOptions = {}): Promise<LedgerRecord[]> {
    options.signal?.throwIfAborted();
    let text: string;
    try {
      text = await readFile(this.path, { encoding: "utf8", ...(options.signal === undefined ? {} : { signal: options.signal }) });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
    return parseLedger(this.path, text);
  }

  /**
   * The last record in file order (the cookbooks' rule), or with `withState` the last one that has a
   * `state_path`; `undefined` when there is none.
   *
   * @throws {LedgerFormatError} as {@link records} does.
   * @example
   * ```ts
   * const resumeFrom = await ledger.latest({ withState: true });
   * if (resumeFrom) console.log(`resume at epoch ${resumeFrom.epoch}, batch ${resumeFrom.batch}`);
   * ```
   */
  async latest(options: LedgerLatestOptions = {}): Promise<LedgerRecord | undefined> {
    const all = await this.records(options);
    for (let i = all.length - 1; i >= 0; i--) {
      const r = all[i]!;
      if (!options.withState || typeof r.state_path === "string") return r;
    }
    return undefined;
  }

  async #append(line: string, options: LedgerFileOptions): Promise<void> {
    options.signal?.throwIfAborted();
    const dir = dirname(this.path);
    await mkdir(dir, { recursive: true });
    const existed = await stat(this.path).then(
      () => true,
      () => false,
    );
    const fh = await open(this.path, "a+");
    try {
      const prefix = await repairTail(fh);
      await fh.write(prefix + line);
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (!existed) await syncDir(dir);
  }
}

/**
 * Makes the file end at a line boundary before an append. Returns `"\n"` when the last line is a complete
 * record that only lacks its newline; truncates a torn (unparseable, unterminated) last line.
 */
async function repairTail(fh: FileHandle): Promise<string> {
  const { size } = await fh.stat();
  if (size === 0) return "";
  // Find the last "\n", reading backwards in chunks.
  let end = size;
  let tail = Buffer.alloc(0);
  let newlineAt = -1;
  while (end > 0) {
    const start = Math.max(0, end - TAIL_CHUNK);
    const buf = Buffer.alloc(end - start);
    await fh.read(buf, 0, buf.length, start);
    const idx = buf.lastIndexOf(0x0a);
    if (idx >= 0) {
      newlineAt = start + idx;
      tail = Buffer.concat([buf.subarray(idx + 1), tail]);
      break;
    }
    tail = Buffer.concat([buf, tail]);
    end = start;
  }
  if (tail.length === 0) return "";
  const fragment = tail.toString("utf8");
  if (fragment.trim() === "") return "\n";
  if (parseLine(fragment).ok) return "\n";
  await fh.truncate(newlineAt + 1);
  return "";
}

async function syncDir(dir: string): Promise<void> {
  try {
    const d = await open(dir, "r");
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  } catch {
    // Not every platform can fsync a directory (Windows); the file itself is synced.
  }
}

function serialize(record: LedgerRecord): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(record);
  } catch (err) {
    throw new InvalidArgumentError(
      `The ledger record for ${JSON.stringify(record.name)} cannot be written as JSON: ${(err as Error).message}.`,
      {
        cause: err,
      },
    );
  }
  if (json === undefined || !json.startsWith("{")) {
    throw new InvalidArgumentError(`A ledger record must serialise to a JSON object, got ${String(json)}.`);
  }
  return `${json}\n`;
}

type LineResult = { ok: true; record: LedgerRecord } | { ok: false; reason: string };

function parseLine(text: string): LineResult {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { ok: false, reason: `not valid JSON (${(err as Error).message})` };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return {
      ok: false,
      reason: `expected a JSON object, got ${Array.isArray(value) ? "an array" : value === null ? "null" : typeof value}`,
    };
  }
  const record = value as Record<string, unknown>;
  // Writers that emit `null` for a missing value (e.g. Python's None) mean "absent".
  for (const key of [...PATH_KEYS, ...KNOWN_NUMBER_KEYS, "time"]) {
    if (record[key] === null) delete record[key];
  }
  const problem = recordProblem(record, false);
  return problem === undefined ? { ok: true, record: record as LedgerRecord } : { ok: false, reason: problem };
}

function parseLedger(path: string, text: string): LedgerRecord[] {
  const terminated = text.endsWith("\n");
  const lines = text.split("\n");
  if (terminated) lines.pop();
  const out: LedgerRecord[] = [];
  lines.forEach((raw, i) => {
    let line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (i === 0 && line.startsWith("\uFEFF")) line = line.slice(1);
    if (line.trim() === "") return;
    const parsed = parseLine(line);
    if (parsed.ok) {
      out.push(parsed.record);
      return;
    }
    // A crash mid-append leaves an unterminated, unparseable last line: that record was never completed.
    if (i === lines.length - 1 && !terminated) return;
    throw new LedgerFormatError(path, i + 1, parsed.reason);
  });
  return out;
}

/** Why a record is not valid, or `undefined`. `strict` (writing) also checks the tinker paths. */
function recordProblem(record: Record<string, unknown>, strict: boolean): string | undefined {
  const name = record["name"];
  if (typeof name !== "string" || name === "") return `"name" must be a non-empty string, got ${describe(name)}`;
  for (const key of KNOWN_NUMBER_KEYS) {
    const v = record[key];
    if (v === undefined) continue;
    if (strict ? !Number.isSafeInteger(v) || (v as number) < 0 : typeof v !== "number") {
      return `"${key}" must be ${strict ? "a whole number ≥ 0" : "a number"}, got ${describe(v)}`;
    }
  }
  const time = record["time"];
  if (time !== undefined && (typeof time !== "string" || (strict && Number.isNaN(Date.parse(time))))) {
    return `"time" must be an ISO 8601 date string, got ${describe(time)}`;
  }
  for (const key of PATH_KEYS) {
    const v = record[key];
    if (v === undefined) continue;
    if (typeof v !== "string") return `"${key}" must be a tinker:// path string, got ${describe(v)}`;
    if (!strict) continue;
    const expected = key === "state_path" ? "weights" : "sampler_weights";
    let kind: string;
    try {
      kind = parseTinkerPath(v).checkpointKind;
    } catch (err) {
      return `"${key}" is not a valid tinker path: ${(err as Error).message}`;
    }
    if (kind !== expected) {
      return key === "state_path"
        ? `"state_path" must be a training checkpoint (tinker://<run>/weights/<name>, from saveState), got the sampler path ${v}`
        : `"sampler_path" must be a sampler checkpoint (tinker://<run>/sampler_weights/<name>, from saveWeightsForSampler), got ${v}`;
    }
  }
  return undefined;
}

function validateRecord(record: unknown, strict: boolean): asserts record is LedgerRecord {
  if (typeof record !== "object" || record === null || Array.isArray(record)) {
    throw new InvalidArgumentError(`A ledger record must be an object like { name: "000100", state_path }, got ${describe(record)}.`);
  }
  const problem = recordProblem(record as Record<string, unknown>, strict);
  if (problem !== undefined) throw new InvalidArgumentError(`Invalid ledger record: ${problem}. Nothing was written.`);
}

function describe(v: unknown): string {
  if (v === undefined) return "undefined";
  if (typeof v === "number" || typeof v === "boolean" || v === null) return String(v);
  if (typeof v === "string") return JSON.stringify(v);
  return Array.isArray(v) ? "an array" : typeof v;
}

function ledgerOf(ledger: CheckpointLedger | string): CheckpointLedger {
  return ledger instanceof CheckpointLedger ? ledger : CheckpointLedger.open(ledger);
}

// ------------------------------------------------------------------------------------------ resumeOrStart

/** Options of {@link resumeOrStart}. */
export interface ResumeOrStartOptions extends CreateLoraTrainingClientOptions {
  /** The run's ledger (a {@link CheckpointLedger} or its file path). A missing file means no records. */
  ledger: CheckpointLedger | string;
  /** Base model. Used to start fresh; when resuming or warm-starting, the checkpoint's own base model is used and a different one is reported through `logger`. */
  baseModel: string;
  /** A training checkpoint (`tinker://<run>/weights/<name>`) to warm-start from (weights only) when the ledger has nothing to resume. */
  warmStartPath?: string;
  /** Where warnings go. Default: stderr, prefixed `[tinker-ts]` (`TINKER_LOG=off` silences it). */
  logger?: Logger;
}

/** Result of {@link resumeOrStart}. */
export interface ResumeOrStartResult {
  /** The training client to continue with. */
  training: TrainingClient;
  /** `resumed`: weights and optimizer from the ledger; `warm-start`: weights only from `warmStartPath`; `fresh`: a new LoRA model. */
  mode: "resumed" | "warm-start" | "fresh";
  /** The ledger record resumed from (mode `resumed`): its `epoch`/`batch`/`step` say where to continue. */
  from?: LedgerRecord;
  /** The checkpoint loaded (modes `resumed` and `warm-start`). */
  path?: string;
}

/**
 * Starts or continues a run, as the cookbooks do:
 * 1. the ledger's latest record with a `state_path` → resume with optimizer state
 *    (`createTrainingClientFromStateWithOptimizer`): training continues exactly where it was saved;
 * 2. else `warmStartPath` → load its weights only, fresh optimizer (`createTrainingClientFromState`);
 * 3. else a new LoRA model (`createLoraTrainingClient` with `baseModel`, `rank`, `seed`, `train*`).
 *
 * A resume never falls back silently: if the recorded checkpoint is gone (expired or deleted) the error is
 * thrown rather than starting over. LoRA rank and `train*` flags come from the checkpoint when loading one.
 *
 * @throws {InvalidArgumentError} before any request, for a missing `baseModel` or a `warmStartPath` that is not
 *   a training checkpoint path.
 * @throws {LedgerFormatError} when the ledger has a damaged line.
 * @throws {NotFoundError} when the checkpoint to resume from no longer exists (nothing is left behind).
 * @example
 * ```ts
 * const ledger = CheckpointLedger.open("runs/exp-1/checkpoints.jsonl");
 * const { training, mode, from } = await resumeOrStart(service, { ledger, baseModel: "Qwen/Qwen3-8B", rank: 16 });
 * const startBatch = mode === "resumed" ? (from?.batch ?? -1) + 1 : 0;
 * ```
 */
export async function resumeOrStart(service: ServiceClient, options: ResumeOrStartOptions): Promise<ResumeOrStartResult> {
  const { ledger: ledgerArg, baseModel, warmStartPath, logger } = options ?? ({} as ResumeOrStartOptions);
  if (typeof baseModel !== "string" || baseModel.trim() === "") {
    throw new InvalidArgumentError('resumeOrStart needs a baseModel, e.g. { baseModel: "Qwen/Qwen3-8B" }.');
  }
  if (warmStartPath !== undefined && parseTinkerPath(warmStartPath).checkpointKind !== "weights") {
    throw new InvalidArgumentError(
      `warmStartPath must be a training checkpoint (tinker://<run>/weights/<name>), got the sampler path ${warmStartPath}: sampler weights cannot seed training.`,
    );
  }
  const ledger = ledgerOf(ledgerArg);
  const call = requestOptionsOf(options);
  const meta = options.userMetadata === undefined ? {} : { userMetadata: options.userMetadata };
  const checkBase = (training: TrainingClient, path: string): void => {
    if (training.baseModel !== baseModel) {
      new Log({ logger, env: process.env }).warn(
        `tinker-ts: ${path} was trained on ${training.baseModel}, not ${baseModel}; continuing with ${training.baseModel}.`,
      );
    }
  };

  const from = await ledger.latest({ withState: true, ...(options.signal === undefined ? {} : { signal: options.signal }) });
  if (from !== undefined && typeof from.state_path === "string") {
    const training = await service.createTrainingClientFromStateWithOptimizer(from.state_path, { ...call, ...meta });
    checkBase(training, from.state_path);
    return { training, mode: "resumed", from, path: from.state_path };
  }
  if (warmStartPath !== undefined) {
    const training = await service.createTrainingClientFromState(warmStartPath, { ...call, ...meta });
    checkBase(training, warmStartPath);
    return { training, mode: "warm-start", path: warmStartPath };
  }
  const training = await service.createLoraTrainingClient({
    ...call,
    ...meta,
    baseModel,
    ...(options.rank === undefined ? {} : { rank: options.rank }),
    ...(options.seed === undefined ? {} : { seed: options.seed }),
    ...(options.trainMlp === undefined ? {} : { trainMlp: options.trainMlp }),
    ...(options.trainAttn === undefined ? {} : { trainAttn: options.trainAttn }),
    ...(options.trainUnembed === undefined ? {} : { trainUnembed: options.trainUnembed }),
  });
  return { training, mode: "fresh" };
}

// ------------------------------------------------------------------------------------------ saveAndRecord

/** A TTL below this (7 days) on a checkpoint recorded for resuming draws a warning. */
export const RESUMABLE_TTL_WARNING_SECONDS = 7 * 86_400;

/** Options of {@link saveAndRecord}. */
export interface SaveAndRecordOptions extends RequestOptions {
  /** TTL of the saved checkpoint(s), whole seconds ≥ 3600; omit to keep them until deleted. Below 7 days draws a warning. */
  ttlSeconds?: number;
  /** Replace an existing training checkpoint of the same name (the sampler save has no such flag). */
  overwrite?: boolean;
  /** Also save weights for sampling (`sampler_path`), from the same point in training. Default false. */
  sampler?: boolean;
  /** More keys for the record, e.g. `{ epoch, batch }` or metrics. May not set `name`, `state_path` or `sampler_path`. */
  extra?: Record<string, unknown>;
  /** Where the short-TTL warning goes. Default: stderr, prefixed `[tinker-ts]` (`TINKER_LOG=off` silences it). */
  logger?: Logger;
}

/**
 * Saves a training checkpoint named `name` (and, with `sampler: true`, sampler weights of the same point in
 * training), waits for the save(s) to complete, then appends a ledger record with the returned paths and the
 * time. A record therefore exists only for checkpoints that were actually saved: if a save fails, nothing is
 * recorded and the error is thrown (a save that did succeed alongside a failed one is not recorded either).
 *
 * Warns through `logger` when `ttlSeconds` is below 7 days: a resumable checkpoint that expires leaves the
 * ledger pointing at nothing.
 *
 * @returns the record written.
 * @throws {InvalidArgumentError} / {@link InvalidCheckpointNameError} / `InvalidTtlError` before anything is
 *   sent or written, for a bad name, TTL or `extra`.
 * @throws {ConflictError} when the checkpoint exists and `overwrite` is not set; the ledger is unchanged.
 * @example
 * ```ts
 * const epoch = 1;
 * const step = 200;
 * await saveAndRecord(training, ledger, `batch-${step}`, { extra: { epoch, batch: step }, sampler: true, ttlSeconds: 30 * 86_400 });
 * ```
 */
export async function saveAndRecord(
  training: TrainingClient,
  ledger: CheckpointLedger | string,
  name: string,
  options: SaveAndRecordOptions = {},
): Promise<LedgerRecord> {
  const { ttlSeconds, overwrite, sampler = false, extra = {}, logger } = options;
  const target = ledgerOf(ledger);
  validateCheckpointName(name);
  validateTtlSeconds(ttlSeconds);
  if (typeof extra !== "object" || extra === null || Array.isArray(extra)) {
    throw new InvalidArgumentError(`extra must be a plain object of record keys, got ${describe(extra)}.`);
  }
  for (const key of ["name", "state_path", "sampler_path"]) {
    if (key in extra) throw new InvalidArgumentError(`extra may not set "${key}": saveAndRecord fills it in from the save.`);
  }
  const draft: LedgerRecord = { name, ...extra };
  validateRecord(draft, true);
  serialize(draft);

  const call = requestOptionsOf(options);
  const ttl = ttlSeconds === undefined ? {} : { ttlSeconds };
  // Submitted back to back: both capture the same operations (consecutive seq_ids, nothing in between).
  const saves: PromiseLike<{ path: string }>[] = [
    training.saveState(name, { ...call, ...ttl, ...(overwrite === undefined ? {} : { overwrite }) }),
  ];
  if (sampler) saves.push(training.saveWeightsForSampler(name, { ...call, ...ttl }));
  const settled = await Promise.allSettled(saves);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
  if (failed !== undefined) throw failed.reason;
  const [state, samp] = settled as PromiseFulfilledResult<{ path: string }>[];

  const record: LedgerRecord = { name, ...extra, state_path: state!.value.path };
  if (samp !== undefined) record.sampler_path = samp.value.path;
  record.time = draft.time ?? new Date().toISOString();
  await target.append(record, call.signal === undefined ? {} : { signal: call.signal });

  if (ttlSeconds !== undefined && ttlSeconds < RESUMABLE_TTL_WARNING_SECONDS) {
    const hours = Math.round((ttlSeconds / 3600) * 10) / 10;
    new Log({ logger, env: process.env }).warn(
      `tinker-ts: ${record.state_path} is recorded in the resume ledger ${target.path} but expires in ${hours} h (ttlSeconds ${ttlSeconds}); ` +
        `a resume after that finds nothing. Omit ttlSeconds or use ≥ ${RESUMABLE_TTL_WARNING_SECONDS} (7 days), or extend it with rest.setCheckpointTtlFromTinkerPath.`,
    );
  }
  return record;
}
