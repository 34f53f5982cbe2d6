/**
 * `tinker-ts checkpoint …`: list, info, download, publish, unpublish, set-ttl, delete.
 *
 * @module
 */
import { createInterface } from "node:readline";
import { NotFoundError, TinkerError } from "../core/errors.js";
import { parseTinkerPath } from "../core/tinker-path.js";
import { downloadCheckpoint } from "../download/download.js";
import type { CheckpointInfo, RestClient, WeightsInfo } from "../rest-client.js";
import { MIN_CHECKPOINT_TTL_SECONDS } from "../core/ttl.js";
import { newestOfEachType } from "../retention.js";
import {
  UsageError,
  dispatch,
  formatBytes,
  formatDuration,
  outputFormat,
  parseCommand,
  parseDuration,
  parseTimeFilter,
  positiveInt,
  renderFields,
  writeJson,
  type CliIO,
} from "./util.js";
import { downloadProgress, pageProgress } from "./progress.js";
import { expiry, listingFooter, lookOf, paint, renderColumns, when, whenLong, type Column, type Look } from "./term.js";

/** Creates the REST client lazily (so `--help` and usage errors never need the environment). */
export type RestFactory = () => RestClient;

/** Deletions running at the same time. */
export const DELETE_CONCURRENCY = 4;

const USAGE = {
  list: "tinker-ts checkpoint list [--run-id ID] [--limit N] [-q] [--absolute] [--format table|json]",
  info: "tinker-ts checkpoint info PATH [--absolute] [--format table|json]",
  download: "tinker-ts checkpoint download PATH [-o DIR] [--force] [--format table|json]",
  publish: "tinker-ts checkpoint publish PATH",
  unpublish: "tinker-ts checkpoint unpublish PATH",
  setTtl: "tinker-ts checkpoint set-ttl PATH (--ttl DURATION | --remove)",
  delete:
    "tinker-ts checkpoint delete (PATH... | --run-id ID [--type training|sampler] [--before T] [--after T] [--keep-last N]) [--yes] [--dry-run] [--absolute] [--format table|json]",
} as const;

/** Help of the `checkpoint` group. */
export const CHECKPOINT_HELP = `Usage: tinker-ts checkpoint <command> [options]

Manage checkpoints (tinker://<run-id>/<weights|sampler_weights>/<name>).

Commands:
  list       List your checkpoints (all runs, newest first) or one run's
  info       Show a checkpoint and the model configuration it was trained with
  download   Download and extract a checkpoint archive
  publish    Make a checkpoint public
  unpublish  Make a checkpoint private
  set-ttl    Set or remove a checkpoint's time to live
  delete     Delete checkpoints by path or by filter (with confirmation)

Run "tinker-ts checkpoint <command> --help" for a command's options.
`;

const HELP: Record<string, string> = {
  list: `Usage: ${USAGE.list}

List checkpoints, newest first: all of yours (fetching pages lazily, with progress on stderr when there
are many), or one run's with --run-id. On a terminal the table fits its width (long paths lose their
middle) and times are relative ("3 hours ago").

Options:
  --run-id ID       Only the checkpoints of this training run
  --limit N         Show at most N checkpoints (the footer says how many more there are)
  -q, --quiet       Print only the paths, one per line
  --absolute        Show times as timestamps (UTC) instead of "3 hours ago"
  --format FORMAT   table (default) or json (an array of checkpoint objects as sent by the server)
  -h, --help        Show this help
`,
  info: `Usage: ${USAGE.info}

Show a checkpoint (type, size, visibility, expiry) and, for training checkpoints, the base model and
LoRA configuration it was trained with.

Options:
  --absolute        Show times as timestamps only
  --format FORMAT   table (default) or json ({"checkpoint": {...}, "weights_info": {...} | null})
  -h, --help        Show this help
`,
  download: `Usage: ${USAGE.download}

Download a checkpoint archive and extract it into DIR/<run-id>_<kind>_<name> (":" and other characters
unsafe in file names become "_"). Resumes interrupted transfers, verifies the archive, and installs
atomically: an existing copy is only replaced with --force, after the new one is complete.

Options:
  -o, --output DIR  Parent directory (default: the current directory)
  --force           Replace an existing copy
  --format FORMAT   table (default: prints the destination) or json
  -h, --help        Show this help
`,
  publish: `Usage: ${USAGE.publish}

Make a checkpoint public (anyone with its path can load it).

Options:
  -h, --help        Show this help
`,
  unpublish: `Usage: ${USAGE.unpublish}

Make a public checkpoint private again.

Options:
  -h, --help        Show this help
`,
  "set-ttl": `Usage: ${USAGE.setTtl}

Set how long a checkpoint is kept (counted from now), or keep it forever with --remove. Checkpoints are
billed until they expire or are deleted.

Options:
  --ttl DURATION    Seconds (3600) or a duration with units s, m, h, d, w (12h, 7d, 2w, 1d12h).
                    At least 1h (3600 s), the service minimum.
  --remove          Remove the expiry (keep until deleted)
  -h, --help        Show this help
`,
  delete: `Usage: ${USAGE.delete}

Delete checkpoints permanently, either the given PATHs or those of one run that match the filters.
Shows the plan (items and total size) and asks for confirmation; without a terminal, --yes is required.

Options:
  --run-id ID       Select the checkpoints of this training run
  --type TYPE       With --run-id: only training or sampler checkpoints
  --before T        With --run-id: only checkpoints created before T
  --after T         With --run-id: only checkpoints created after T
                    T is an ISO date/time (2025-01-31, 2025-01-31T12:00:00Z) or an age: 7d = 7 days ago,
                    so --before 7d means "older than 7 days"
  --keep-last N     With --run-id: never delete the newest N checkpoints of each type (training, sampler)
  -y, --yes         Do not ask for confirmation
  --dry-run         Print the plan and delete nothing
  --absolute        Show times as timestamps (UTC) instead of "3 hours ago"
  --format FORMAT   table (default) or json
  -h, --help        Show this help
`,
};

/**
 * Runs `tinker-ts checkpoint <sub> …`. Returns the exit code.
 *
 * @example
 * ```ts
 * const code = await runCheckpointCommand(["list", "--limit", "5"], io, () => rest);
 * ```
 */
export async function runCheckpointCommand(args: string[], io: CliIO, rest: RestFactory): Promise<number> {
  return dispatch(args, io, {
    name: "checkpoint",
    help: CHECKPOINT_HELP,
    subHelp: HELP,
    commands: {
      list: (a) => listCommand(a, io, rest),
      info: (a) => infoCommand(a, io, rest),
      download: (a) => downloadCommand(a, io, rest),
      publish: (a) => publishCommand("publish", a, io, rest),
      unpublish: (a) => publishCommand("unpublish", a, io, rest),
      "set-ttl": (a) => setTtlCommand(a, io, rest),
      delete: (a) => deleteCommand(a, io, rest),
    },
  });
}

function onePath(positionals: string[], usage: string, what = "PATH"): string {
  if (positionals.length !== 1) {
    throw new UsageError(positionals.length === 0 ? `Missing ${what}.` : `Expected one ${what}, got ${positionals.length}.`, usage);
  }
  const p = positionals[0] as string;
  parseTinkerPath(p);
  return p;
}

/** The columns of checkpoint tables: the path gives way first when the terminal is narrow. */
const CHECKPOINT_COLUMNS: Column[] = [
  { header: "PATH", shrink: true },
  { header: "TYPE", style: (t) => (t === "training" ? "cyan" : "magenta") },
  { header: "SIZE", align: "right" },
  { header: "PUBLIC", style: (v) => (v === "yes" ? "green" : "dim") },
  { header: "CREATED" },
  { header: "EXPIRES", style: (v) => (v === "never" ? "dim" : undefined) },
];

function checkpointRows(checkpoints: CheckpointInfo[], look: Look): string[][] {
  return checkpoints.map((c) => [
    c.tinker_path,
    c.checkpoint_type,
    formatBytes(c.size_bytes),
    c.public === true ? "yes" : "no",
    when(look, c.time),
    expiry(look, c.expires_at),
  ]);
}

function sumBytes(checkpoints: { size_bytes?: number | null }[]): number {
  return checkpoints.reduce((n, c) => n + (c.size_bytes ?? 0), 0);
}

/** Newest first; items with the same time keep the reverse of the server's (oldest-first) order. */
export function newestFirst<T extends { time: string }>(items: readonly T[]): T[] {
  const t = (x: T): number => {
    const ms = Date.parse(x.time);
    return Number.isFinite(ms) ? ms : -Infinity;
  };
  return [...items].reverse().sort((a, b) => t(b) - t(a));
}

/** The options `--absolute` and `-q/--quiet` of listings. */
const LISTING_OPTIONS = { absolute: { type: "boolean" }, quiet: { type: "boolean", short: "q" } } as const;

async function listCommand(args: string[], io: CliIO, restFactory: RestFactory): Promise<number> {
  const { values, positionals } = parseCommand(
    args,
    { "run-id": { type: "string" }, limit: { type: "string" }, ...LISTING_OPTIONS },
    USAGE.list,
  );
  if (positionals.length > 0) throw new UsageError(`Unexpected argument ${JSON.stringify(positionals[0])}.`, USAGE.list);
  const format = outputFormat(values.format, USAGE.list);
  const limit = positiveInt(values.limit, "--limit", USAGE.list);
  const rest = restFactory();
  let checkpoints: CheckpointInfo[];
  let total: number | null;
  let cut = false;
  const runId = values["run-id"];
  if (runId !== undefined) {
    checkpoints = newestFirst((await rest.listCheckpoints(runId)).checkpoints);
    total = checkpoints.length;
    if (limit !== undefined && checkpoints.length > limit) {
      checkpoints = checkpoints.slice(0, limit);
      cut = true;
    }
  } else {
    checkpoints = [];
    const pageSize = Math.min(limit === undefined ? 100 : limit + 1, 100);
    const progress = pageProgress(io, "checkpoints", limit);
    for await (const c of rest.iterUserCheckpoints({ pageSize, onPage: progress.onPage })) {
      if (limit !== undefined && checkpoints.length >= limit) {
        cut = true;
        break;
      }
      checkpoints.push(c);
    }
    progress.finish();
    total = progress.totalCount();
    checkpoints = newestFirst(checkpoints);
  }
  if (format === "json") {
    writeJson(io, checkpoints);
    return 0;
  }
  if (values.quiet === true) {
    for (const c of checkpoints) io.stdout.write(`${c.tinker_path}\n`);
    return 0;
  }
  if (checkpoints.length === 0) {
    io.stdout.write(runId === undefined ? "No checkpoints.\n" : `No checkpoints in run ${runId}.\n`);
    return 0;
  }
  const look = lookOf(io, { absolute: values.absolute });
  io.stdout.write(renderColumns(CHECKPOINT_COLUMNS, checkpointRows(checkpoints, look), look));
  const footer = listingFooter({ shown: checkpoints.length, total, cut, noun: "checkpoint", extra: formatBytes(sumBytes(checkpoints)) });
  io.stdout.write(`${paint(look.color, "dim", footer)}\n`);
  return 0;
}

/** Finds a checkpoint in its run's list, or throws a NotFoundError naming the path. */
async function findCheckpoint(rest: RestClient, tinkerPath: string): Promise<CheckpointInfo> {
  const p = parseTinkerPath(tinkerPath);
  const { checkpoints } = await rest.listCheckpoints(p.trainingRunId);
  const found = checkpoints.find((c) => c.checkpoint_id === p.checkpointId || c.tinker_path === tinkerPath);
  if (found === undefined) {
    throw new NotFoundError({
      status: 404,
      message: `Checkpoint ${tinkerPath} was not found (expired or deleted?). Run "tinker-ts checkpoint list --run-id ${p.trainingRunId}" to see the run's checkpoints.`,
    });
  }
  return found;
}

async function infoCommand(args: string[], io: CliIO, restFactory: RestFactory): Promise<number> {
  const { values, positionals } = parseCommand(args, { absolute: { type: "boolean" } }, USAGE.info);
  const format = outputFormat(values.format, USAGE.info);
  const tinkerPath = onePath(positionals, USAGE.info);
  const look = lookOf(io, { absolute: values.absolute });
  const rest = restFactory();
  const checkpoint = await findCheckpoint(rest, tinkerPath);
  let weights: WeightsInfo | null = null;
  try {
    weights = await rest.getWeightsInfoByTinkerPath(tinkerPath);
  } catch (err) {
    if (checkpoint.checkpoint_type === "training") throw err;
  }
  if (format === "json") {
    writeJson(io, { checkpoint, weights_info: weights });
    return 0;
  }
  const fields: [string, string][] = [
    ["Path", checkpoint.tinker_path],
    ["Checkpoint id", checkpoint.checkpoint_id],
    ["Type", checkpoint.checkpoint_type],
    ["Size", `${formatBytes(checkpoint.size_bytes)}${checkpoint.size_bytes == null ? "" : ` (${checkpoint.size_bytes} bytes)`}`],
    ["Public", checkpoint.public === true ? "yes" : "no"],
    ["Created", whenLong(look, checkpoint.time)],
    ["Expires", expiry(look, checkpoint.expires_at, true)],
  ];
  if (weights !== null) {
    fields.push(["Base model", weights.base_model], ["LoRA", weights.is_lora ? `yes, rank ${weights.lora_rank ?? "?"}` : "no"]);
    const flags = (["train_mlp", "train_attn", "train_unembed"] as const)
      .filter((k) => weights?.[k] !== undefined && weights[k] !== null)
      .map((k) => `${k}=${String(weights?.[k])}`);
    if (flags.length > 0) fields.push(["Trained", flags.join(" ")]);
  }
  io.stdout.write(renderFields(fields));
  return 0;
}

async function downloadCommand(args: string[], io: CliIO, restFactory: RestFactory): Promise<number> {
  const { values, positionals } = parseCommand(
    args,
    { output: { type: "string", short: "o" }, force: { type: "boolean" } },
    USAGE.download,
  );
  const format = outputFormat(values.format, USAGE.download);
  const tinkerPath = onePath(positionals, USAGE.download);
  const rest = restFactory();
  const progress = downloadProgress(io, tinkerPath);
  const ac = new AbortController();
  const onSigint = (): void => ac.abort(new TinkerError("interrupted"));
  process.once("SIGINT", onSigint);
  try {
    const result = await downloadCheckpoint(rest, tinkerPath, {
      outputDir: values.output ?? ".",
      force: values.force === true,
      signal: ac.signal,
      onProgress: progress.onProgress,
      onArchivePending: (attempt) =>
        io.stderr.write(`The archive of ${tinkerPath} is still being generated (attempt ${attempt}); waiting…\n`),
    });
    progress.finish();
    if (format === "json") writeJson(io, result);
    else io.stdout.write(`${result.destination}\n`);
    return 0;
  } catch (err) {
    progress.finish();
    if (ac.signal.aborted) {
      io.stderr.write(`Interrupted: ${tinkerPath} was not downloaded (temporary files removed; any previous copy is intact).\n`);
      return 130; // the shell convention for Ctrl-C
    }
    throw err;
  } finally {
    process.removeListener("SIGINT", onSigint);
  }
}

async function publishCommand(sub: "publish" | "unpublish", args: string[], io: CliIO, restFactory: RestFactory): Promise<number> {
  const usage = sub === "publish" ? USAGE.publish : USAGE.unpublish;
  const { positionals } = parseCommand(args, {}, usage);
  const tinkerPath = onePath(positionals, usage);
  const rest = restFactory();
  if (sub === "publish") await rest.publishCheckpointFromTinkerPath(tinkerPath);
  else await rest.unpublishCheckpointFromTinkerPath(tinkerPath);
  io.stdout.write(`${sub === "publish" ? "Published" : "Unpublished"} ${tinkerPath}\n`);
  return 0;
}

async function setTtlCommand(args: string[], io: CliIO, restFactory: RestFactory): Promise<number> {
  const { values, positionals } = parseCommand(args, { ttl: { type: "string" }, remove: { type: "boolean" } }, USAGE.setTtl);
  const tinkerPath = onePath(positionals, USAGE.setTtl);
  if ((values.ttl === undefined) === (values.remove !== true)) {
    throw new UsageError("Give exactly one of --ttl DURATION or --remove.", USAGE.setTtl);
  }
  let ttl: number | null = null;
  if (values.ttl !== undefined) {
    const seconds = parseDuration(values.ttl);
    if (seconds === undefined || !Number.isInteger(seconds)) {
      throw new UsageError(`--ttl must be seconds or a duration such as 12h, 7d, 2w; got ${JSON.stringify(values.ttl)}.`, USAGE.setTtl);
    }
    if (seconds < MIN_CHECKPOINT_TTL_SECONDS) {
      throw new UsageError(`--ttl ${values.ttl} is ${seconds} s; the minimum is ${MIN_CHECKPOINT_TTL_SECONDS} s (1h).`, USAGE.setTtl);
    }
    ttl = seconds;
  }
  const rest = restFactory();
  await rest.setCheckpointTtlFromTinkerPath(tinkerPath, ttl);
  if (ttl === null) io.stdout.write(`Removed the expiry of ${tinkerPath}: it is kept until deleted.\n`);
  else {
    const at = new Date(Date.now() + ttl * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
    io.stdout.write(`Set the TTL of ${tinkerPath} to ${values.ttl?.trim() ?? formatDuration(ttl)} (${ttl} s): it expires around ${at}.\n`);
  }
  return 0;
}

/** One checkpoint in a deletion plan. */
interface PlanItem {
  tinker_path: string;
  checkpoint_type: string | null;
  size_bytes: number | null;
  time: string | null;
  found: boolean;
}

async function deleteCommand(args: string[], io: CliIO, restFactory: RestFactory): Promise<number> {
  const usage = USAGE.delete;
  const { values, positionals } = parseCommand(
    args,
    {
      "run-id": { type: "string" },
      type: { type: "string" },
      before: { type: "string" },
      after: { type: "string" },
      "keep-last": { type: "string" },
      yes: { type: "boolean", short: "y" },
      "dry-run": { type: "boolean" },
      absolute: { type: "boolean" },
    },
    usage,
  );
  const format = outputFormat(values.format, usage);
  const runId = values["run-id"];
  const filters =
    values.type !== undefined || values.before !== undefined || values.after !== undefined || values["keep-last"] !== undefined;
  if (runId !== undefined && positionals.length > 0) throw new UsageError("Give either PATHs or --run-id, not both.", usage);
  if (runId === undefined && positionals.length === 0)
    throw new UsageError("Give the PATHs to delete, or --run-id ID with filters.", usage);
  if (runId === undefined && filters) throw new UsageError("--type, --before, --after and --keep-last need --run-id.", usage);
  const keepLast = positiveInt(values["keep-last"], "--keep-last", usage);
  if (values.type !== undefined && values.type !== "training" && values.type !== "sampler") {
    throw new UsageError(`--type must be "training" or "sampler", got ${JSON.stringify(values.type)}.`, usage);
  }
  const now = Date.now();
  const before = values.before === undefined ? undefined : parseTimeFilter(values.before, "--before", usage, now);
  const after = values.after === undefined ? undefined : parseTimeFilter(values.after, "--after", usage, now);
  for (const p of positionals) parseTinkerPath(p);

  const rest = restFactory();
  let plan: PlanItem[];
  if (runId !== undefined) {
    const { checkpoints } = await rest.listCheckpoints(runId);
    const considered = checkpoints.filter((c) => values.type === undefined || c.checkpoint_type === values.type);
    const kept = keepLast === undefined ? new Set<CheckpointInfo>() : newestOfEachType(considered, keepLast);
    plan = newestFirst(considered)
      .filter((c) => !kept.has(c))
      .filter((c) => before === undefined || Date.parse(c.time) < before)
      .filter((c) => after === undefined || Date.parse(c.time) > after)
      .map((c) => ({
        tinker_path: c.tinker_path,
        checkpoint_type: c.checkpoint_type,
        size_bytes: c.size_bytes ?? null,
        time: c.time,
        found: true,
      }));
  } else {
    plan = await planForPaths(rest, [...new Set(positionals)]);
  }
  const totalBytes = plan.reduce((n, i) => n + (i.size_bytes ?? 0), 0);

  if (plan.length === 0) {
    if (format === "json") writeJson(io, { dry_run: values["dry-run"] === true, checkpoints: [], total_bytes: 0, deleted: [], failed: [] });
    else io.stdout.write("No checkpoints match; nothing to delete.\n");
    return 0;
  }

  if (values["dry-run"] === true) {
    if (format === "json") writeJson(io, { dry_run: true, checkpoints: plan, total_bytes: totalBytes });
    else {
      io.stdout.write(renderPlan(plan, totalBytes, lookOf(io, { absolute: values.absolute })));
      io.stdout.write("Dry run: nothing was deleted.\n");
    }
    return 0;
  }

  if (values.yes !== true) {
    if (io.stdin.isTTY !== true) {
      io.stderr.write(renderPlan(plan, totalBytes, lookOf(io, { absolute: values.absolute }, io.stderr)));
      throw new TinkerError(
        `Refusing to delete ${plan.length} checkpoint${plan.length === 1 ? "" : "s"} without confirmation: stdin is not a terminal. Pass --yes to confirm (or --dry-run to only see the plan).`,
      );
    }
    io.stderr.write(renderPlan(plan, totalBytes, lookOf(io, { absolute: values.absolute }, io.stderr)));
    const answer = await ask(
      io,
      `Delete ${plan.length} checkpoint${plan.length === 1 ? "" : "s"} (${formatBytes(totalBytes)})? This cannot be undone. [y/N] `,
    );
    if (!/^y(es)?$/i.test(answer.trim())) {
      io.stderr.write("Cancelled; nothing was deleted.\n");
      return 1;
    }
  }

  const deleted: PlanItem[] = [];
  const failed: { item: PlanItem; error: unknown }[] = [];
  await forEachLimited(plan, DELETE_CONCURRENCY, async (item) => {
    try {
      await rest.deleteCheckpointFromTinkerPath(item.tinker_path);
      deleted.push(item);
      if (format === "table") io.stdout.write(`Deleted ${item.tinker_path}\n`);
    } catch (error) {
      failed.push({ item, error });
      io.stderr.write(`Failed to delete ${item.tinker_path}: ${describeError(error)}\n`);
    }
  });
  const freed = deleted.reduce((n, i) => n + (i.size_bytes ?? 0), 0);
  if (format === "json") {
    writeJson(io, {
      dry_run: false,
      deleted: deleted.map((i) => i.tinker_path),
      failed: failed.map((f) => ({ tinker_path: f.item.tinker_path, error: describeError(f.error) })),
      freed_bytes: freed,
    });
  } else {
    io.stdout.write(
      `Deleted ${deleted.length} of ${plan.length} checkpoint${plan.length === 1 ? "" : "s"} (${formatBytes(freed)} freed)${failed.length > 0 ? `; ${failed.length} failed` : ""}.\n`,
    );
  }
  return failed.length > 0 ? 1 : 0;
}

async function planForPaths(rest: RestClient, paths: string[]): Promise<PlanItem[]> {
  const byRun = new Map<string, CheckpointInfo[] | null>();
  for (const p of paths) {
    const runId = parseTinkerPath(p).trainingRunId;
    if (byRun.has(runId)) continue;
    try {
      byRun.set(runId, (await rest.listCheckpoints(runId)).checkpoints);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      byRun.set(runId, null);
    }
  }
  return paths.map((p) => {
    const parsed = parseTinkerPath(p);
    const c = byRun.get(parsed.trainingRunId)?.find((x) => x.checkpoint_id === parsed.checkpointId);
    return c === undefined
      ? { tinker_path: p, checkpoint_type: parsed.checkpointType, size_bytes: null, time: null, found: false }
      : { tinker_path: p, checkpoint_type: c.checkpoint_type, size_bytes: c.size_bytes ?? null, time: c.time, found: true };
  });
}

function renderPlan(plan: PlanItem[], totalBytes: number, look: Look): string {
  const rows = plan.map((i) => [
    i.tinker_path,
    i.checkpoint_type ?? "-",
    i.found ? formatBytes(i.size_bytes) : "(not found)",
    when(look, i.time),
  ]);
  const columns = CHECKPOINT_COLUMNS.slice(0, 3).concat([{ header: "CREATED" }]);
  return (
    `${plan.length} checkpoint${plan.length === 1 ? "" : "s"} to delete, ${formatBytes(totalBytes)} in total:\n` +
    renderColumns(columns, rows, look)
  );
}

function ask(io: CliIO, question: string): Promise<string> {
  return new Promise((resolve) => {
    const rl = createInterface({ input: io.stdin, output: io.stderr as NodeJS.WritableStream, terminal: false });
    let answered = false;
    rl.question(question, (answer) => {
      answered = true;
      rl.close();
      resolve(answer);
    });
    rl.on("close", () => {
      if (!answered) resolve("");
    });
  });
}

async function forEachLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** `ClassName: message` for stderr. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}
