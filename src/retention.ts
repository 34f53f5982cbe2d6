/**
 * Storage hygiene: checkpoints are billed until they expire or are deleted. Plan and carry out "keep the last
 * N" pruning of a run's checkpoints (with a dry run and the bytes it frees), and keep a single rolling
 * "just in case" checkpoint whose predecessor is deleted only after the next save succeeded.
 *
 * @module
 */
import type { components } from "./core/wire.js";
import { APIUserAbortError, ConflictError, InvalidArgumentError, NotFoundError } from "./core/errors.js";
import { InvalidCheckpointNameError, validateCheckpointName } from "./core/tinker-path.js";
import type { RequestOptions } from "./core/options.js";
import { requestOptionsOf } from "./internal/request-options.js";
import { validateTtlSeconds } from "./core/ttl.js";
import type { RestClient } from "./rest-client.js";
import type { TrainingClient } from "./training-client.js";

/** A checkpoint as the service lists it (wire type). */
export type Checkpoint = components["schemas"]["Checkpoint"];

/** Options of {@link planCheckpointPruning}. */
export interface PlanPruningOptions extends RequestOptions {
  /** How many of the newest checkpoints to keep: per type (training, sampler) unless `type` is given. Whole number ≥ 0. */
  keepLast: number;
  /** Only consider checkpoints of this type; the others are left alone and not listed. Default: both, each separately. */
  type?: "training" | "sampler";
  /** Only delete checkpoints created before this date; newer ones beyond `keepLast` are kept too. */
  olderThan?: Date;
}

/** What {@link planCheckpointPruning} proposes. Both lists are newest first. */
export interface PruningPlan {
  /** The considered checkpoints that stay. */
  keep: Checkpoint[];
  /** The checkpoints to delete. */
  delete: Checkpoint[];
  /** Total `size_bytes` of `delete` (checkpoints without a known size count 0). */
  bytes: number;
}

/** Options of {@link pruneCheckpoints}. */
export interface PruneOptions extends PlanPruningOptions {
  /** Plan only: delete nothing. Default false. */
  dryRun?: boolean;
  /** How many deletions run at once (whole number ≥ 1, default 4). */
  concurrency?: number;
}

/** One deletion that did not succeed. */
export interface PruneFailure {
  /** The checkpoint that was not deleted. */
  checkpoint: Checkpoint;
  /** Why (e.g. `NotFoundError` if it expired meanwhile, `APIUserAbortError` after an abort). */
  error: unknown;
}

/** Result of {@link pruneCheckpoints}. */
export interface PruneResult {
  /** The plan that was carried out (or, with `dryRun`, only computed). */
  plan: PruningPlan;
  /** Checkpoints deleted, newest first. Empty on a dry run. */
  deleted: Checkpoint[];
  /** Deletions that failed, newest first; each with its error. */
  failed: PruneFailure[];
  /** Total `size_bytes` of `deleted` (what was freed). See `plan.bytes` for what a dry run would free. */
  bytes: number;
}

const TYPES = ["training", "sampler"] as const;

function timeOf(c: Pick<Checkpoint, "time">): number {
  const t = Date.parse(c.time);
  return Number.isNaN(t) ? Number.NEGATIVE_INFINITY : t;
}

function sumBytes(checkpoints: readonly Checkpoint[]): number {
  return checkpoints.reduce((n, c) => n + (c.size_bytes ?? 0), 0);
}

function checkPlanOptions(options: PlanPruningOptions): void {
  if (typeof options !== "object" || options === null) {
    throw new InvalidArgumentError("Pruning needs options, e.g. { keepLast: 3 }.");
  }
  const { keepLast, type, olderThan } = options;
  if (typeof keepLast !== "number" || !Number.isSafeInteger(keepLast) || keepLast < 0) {
    throw new InvalidArgumentError(`keepLast must be a whole number ≥ 0, got ${String(keepLast)}.`);
  }
  if (type !== undefined && type !== "training" && type !== "sampler") {
    throw new InvalidArgumentError(`type must be "training" or "sampler" (or omitted for both), got ${JSON.stringify(type)}.`);
  }
  if (olderThan !== undefined && (!(olderThan instanceof Date) || Number.isNaN(olderThan.getTime()))) {
    throw new InvalidArgumentError(`olderThan must be a valid Date, got ${String(olderThan)}.`);
  }
}

/**
 * Plans which of a run's checkpoints to delete, without deleting anything. Checkpoints are ordered newest
 * first by `time`; the newest `keepLast` of each type are kept (or of `type` only, when given); of the rest,
 * those created before `olderThan` (all of them without it) are planned for deletion.
 *
 * @throws {InvalidArgumentError} before any request, when `keepLast` is not a whole number ≥ 0, `type` is
 *   unknown, `olderThan` is not a valid Date, or `runId` is empty.
 * @throws {NotFoundError} when the run does not exist.
 * @example
 * ```ts
 * const plan = await planCheckpointPruning(rest, training.modelId, { keepLast: 2, type: "training" });
 * console.log(`would delete ${plan.delete.length} checkpoints, ${plan.bytes} bytes`);
 * ```
 */
export async function planCheckpointPruning(rest: RestClient, runId: string, options: PlanPruningOptions): Promise<PruningPlan> {
  checkPlanOptions(options);
  const { keepLast, type, olderThan } = options;
  const { checkpoints } = await rest.listCheckpoints(runId, requestOptionsOf(options));
  const considered = checkpoints.filter((c) => type === undefined || c.checkpoint_type === type);
  const newest = newestOfEachType(considered, keepLast);
  const cutoff = olderThan?.getTime();
  const keep: Checkpoint[] = [];
  const del: Checkpoint[] = [];
  for (const c of considered.sort(newestFirst)) {
    if (newest.has(c) || (cutoff !== undefined && !(timeOf(c) < cutoff))) keep.push(c);
    else del.push(c);
  }
  return { keep, delete: del, bytes: sumBytes(del) };
}

function newestFirst(a: Checkpoint, b: Checkpoint): number {
  return timeOf(b) - timeOf(a);
}

/**
 * The newest `keepLast` checkpoints of each type (training, sampler) among `checkpoints`, by `time`: what "keep
 * the last N" keeps. Used by {@link planCheckpointPruning} and `tinker-ts checkpoint delete --keep-last`.
 *
 * @example
 * ```ts
 * const keep = newestOfEachType((await rest.listCheckpoints(runId)).checkpoints, 2);
 * ```
 */
export function newestOfEachType<C extends Pick<Checkpoint, "checkpoint_type" | "time">>(
  checkpoints: readonly C[],
  keepLast: number,
): Set<C> {
  const kept = new Set<C>();
  for (const t of TYPES) {
    const ofType = checkpoints.filter((c) => c.checkpoint_type === t).sort((a, b) => timeOf(b) - timeOf(a));
    for (const c of ofType.slice(0, keepLast)) kept.add(c);
  }
  return kept;
}

/**
 * Plans as {@link planCheckpointPruning} does, then deletes the planned checkpoints, `concurrency` at a time.
 * Never throws for an individual deletion: each failure is reported in `failed` with its error. After an abort
 * (`signal`), deletions not yet started are reported as failed with an `APIUserAbortError`.
 *
 * @throws {InvalidArgumentError} before any request, for invalid options (as the plan, and `concurrency`).
 * @throws {NotFoundError} when the run does not exist (from the listing; nothing is deleted).
 * @example
 * ```ts
 * const preview = await pruneCheckpoints(rest, runId, { keepLast: 3, dryRun: true });
 * const { deleted, failed, bytes } = await pruneCheckpoints(rest, runId, { keepLast: 3, concurrency: 8 });
 * console.log(`freed ${bytes} bytes; ${failed.length} failures`);
 * ```
 */
export async function pruneCheckpoints(rest: RestClient, runId: string, options: PruneOptions): Promise<PruneResult> {
  checkPlanOptions(options);
  const concurrency = options.concurrency ?? 4;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
    throw new InvalidArgumentError(`concurrency must be a whole number ≥ 1, got ${String(concurrency)}.`);
  }
  const plan = await planCheckpointPruning(rest, runId, options);
  if (options.dryRun) return { plan, deleted: [], failed: [], bytes: 0 };

  const call = requestOptionsOf(options);
  const outcome = new Map<Checkpoint, unknown>(); // undefined: deleted
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < plan.delete.length) {
      const c = plan.delete[next++]!;
      if (options.signal?.aborted) {
        outcome.set(
          c,
          new APIUserAbortError({
            cause: options.signal.reason,
            message: `Did not delete ${c.tinker_path}: pruning was aborted by the caller.`,
          }),
        );
        continue;
      }
      try {
        await rest.deleteCheckpoint(runId, c.checkpoint_id, call);
        outcome.set(c, undefined);
      } catch (err) {
        outcome.set(c, err ?? new Error("deletion failed"));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, plan.delete.length) }, worker));
  const deleted = plan.delete.filter((c) => outcome.get(c) === undefined);
  const failed = plan.delete.filter((c) => outcome.get(c) !== undefined).map((c) => ({ checkpoint: c, error: outcome.get(c) }));
  return { plan, deleted, failed, bytes: sumBytes(deleted) };
}

// ------------------------------------------------------------------------------------------ RollingCheckpoint

/** Options of {@link RollingCheckpoint}. */
export interface RollingCheckpointOptions {
  /** Name prefix: checkpoints are named `${prefix}-${n}`, n = 1, 2, 3, ... Default `"rolling"`. */
  prefix?: string;
  /** TTL of each rolling checkpoint (whole seconds ≥ 3600), as a safety net should a deletion fail. */
  ttlSeconds?: number;
  /** The first n (default 1), e.g. to continue a numbering on the same training client. */
  start?: number;
}

/** Result of {@link RollingCheckpoint.save}. */
export interface RollingSaveResult {
  /** The new checkpoint, `tinker://<run>/weights/${prefix}-${n}`. */
  path: string;
  /** The previous rolling checkpoint, deleted after this save succeeded. */
  deletedPrevious?: string;
  /** Every older rolling checkpoint this call removed (the previous one, and any left over by earlier failures). */
  deleted: string[];
  /** Deletions that failed; they are retried by the next successful save. */
  deleteFailures: { path: string; error: unknown }[];
}

/**
 * A "just in case" checkpoint that costs the storage of one: each {@link save} writes `${prefix}-${n}` and,
 * only once that save has succeeded, deletes the previous one. If a save fails, the previous checkpoint stays
 * (it is still the latest good state). A failed deletion is reported in the result, never thrown, and retried
 * at the next successful save; a checkpoint that is already gone (404) counts as removed.
 *
 * @example
 * ```ts
 * const rolling = new RollingCheckpoint(training, service.createRestClient(), { prefix: "rolling", ttlSeconds: 2 * 86_400 });
 * for (let step = 1; step <= 1_000; step++) {
 *   await training.forwardBackward(batch, "cross_entropy");
 *   await training.optimStep({ learning_rate: 1e-4 });
 *   if (step % 50 === 0) console.log((await rolling.save()).path); // the previous rolling save is then deleted
 * }
 * ```
 */
export class RollingCheckpoint {
  /** The name prefix in use. */
  readonly prefix: string;
  readonly #training: TrainingClient;
  readonly #rest: RestClient;
  readonly #ttlSeconds: number | undefined;
  #n: number;
  #current: string | undefined;
  /** Rolling checkpoints to remove at the next successful save: failed deletions, saves of unknown outcome. */
  #leftovers: string[] = [];
  /** Leftovers from saves whose outcome is unknown: a 404 for them means the save never happened. */
  readonly #uncertain = new Set<string>();
  #queue: Promise<unknown> = Promise.resolve();

  /**
   * Wraps a training client; saves nothing yet.
   *
   * @throws {InvalidCheckpointNameError} when `${prefix}-1` is not a valid checkpoint name.
   * @throws {InvalidArgumentError} for an invalid `ttlSeconds` or `start`.
   */
  constructor(training: TrainingClient, rest: RestClient, options: RollingCheckpointOptions = {}) {
    const prefix = options.prefix ?? "rolling";
    const start = options.start ?? 1;
    if (!Number.isSafeInteger(start) || start < 0)
      throw new InvalidArgumentError(`start must be a whole number ≥ 0, got ${String(start)}.`);
    if (typeof prefix !== "string" || prefix === "") throw new InvalidCheckpointNameError(String(prefix), "the prefix is empty");
    validateCheckpointName(`${prefix}-${start}`);
    validateTtlSeconds(options.ttlSeconds);
    this.prefix = prefix;
    this.#training = training;
    this.#rest = rest;
    this.#ttlSeconds = options.ttlSeconds;
    this.#n = start;
  }

  /** The latest rolling checkpoint saved by this object, if any. */
  get current(): string | undefined {
    return this.#current;
  }

  /**
   * Saves the next rolling checkpoint (training state: weights and optimizer), then deletes the previous one.
   * Calls are serialised. The number n advances on every attempt, so a failed save is not retried under the
   * same name.
   *
   * @throws the save's error (e.g. {@link ConflictError} when `${prefix}-${n}` already exists); the previous
   *   rolling checkpoint is then kept and nothing is deleted.
   * @example
   * ```ts
   * const rolling = new RollingCheckpoint(training, rest);
   * const { path, deletedPrevious, deleteFailures } = await rolling.save({ timeoutMs: 30_000 });
   * ```
   */
  save(options: RequestOptions = {}): Promise<RollingSaveResult> {
    const run = this.#queue.then(() => this.#save(options));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #save(options: RequestOptions): Promise<RollingSaveResult> {
    const name = `${this.prefix}-${this.#n++}`;
    let path: string;
    try {
      const saved = await this.#training.saveState(name, {
        ...requestOptionsOf(options),
        ...(this.#ttlSeconds === undefined ? {} : { ttlSeconds: this.#ttlSeconds }),
      });
      path = saved.path;
    } catch (err) {
      // A conflict means the name belongs to a checkpoint we did not write: never delete it. Any other failure
      // (timeout, abort, connection) may have saved it after all: remove it after the next success.
      if (!(err instanceof ConflictError) && !(err instanceof InvalidArgumentError) && !(err instanceof InvalidCheckpointNameError)) {
        const maybe = `tinker://${this.#training.modelId}/weights/${name}`;
        this.#leftovers.push(maybe);
        this.#uncertain.add(maybe);
      }
      throw err;
    }
    const previous = this.#current;
    this.#current = path;
    const toDelete = [...(previous === undefined ? [] : [previous]), ...this.#leftovers.filter((p) => p !== path && p !== previous)];
    this.#leftovers = [];
    const deleted: string[] = [];
    const deleteFailures: { path: string; error: unknown }[] = [];
    for (const p of toDelete) {
      try {
        await this.#rest.deleteCheckpointFromTinkerPath(p, requestOptionsOf(options));
        deleted.push(p);
        this.#uncertain.delete(p);
      } catch (err) {
        if (err instanceof NotFoundError) {
          // Already gone (expired, deleted elsewhere), or never saved.
          if (!this.#uncertain.has(p)) deleted.push(p);
          this.#uncertain.delete(p);
          continue;
        }
        deleteFailures.push({ path: p, error: err });
        this.#leftovers.push(p);
      }
    }
    return {
      path,
      ...(previous !== undefined && deleted.includes(previous) ? { deletedPrevious: previous } : {}),
      deleted,
      deleteFailures,
    };
  }
}
