/**
 * `tinker-ts run …`: list and info of training runs.
 *
 * @module
 */
import type { TrainingRunInfo } from "../rest-client.js";
import type { RestFactory } from "./checkpoint.js";
import { pageProgress } from "./progress.js";
import { listingFooter, lookOf, paint, renderColumns, when, whenLong } from "./term.js";
import { UsageError, dispatch, formatBytes, outputFormat, parseCommand, positiveInt, renderFields, writeJson, type CliIO } from "./util.js";

const USAGE = {
  list: "tinker-ts run list [--limit N] [-q] [--absolute] [--format table|json]",
  info: "tinker-ts run info RUN_ID [--absolute] [--format table|json]",
} as const;

/** Help of the `run` group. */
export const RUN_HELP = `Usage: tinker-ts run <command> [options]

Inspect training runs (one per trained model).

Commands:
  list   List your training runs
  info   Show one training run and its latest checkpoints

Run "tinker-ts run <command> --help" for a command's options.
`;

const HELP: Record<string, string> = {
  list: `Usage: ${USAGE.list}

List your training runs, newest first, fetching pages lazily (progress on stderr when there are many).
On a terminal the table fits its width and times are relative ("3 hours ago").

Options:
  --limit N         Show at most N runs (the footer says how many more there are)
  -q, --quiet       Print only the run ids, one per line
  --absolute        Show times as timestamps (UTC) instead of "3 hours ago"
  --format FORMAT   table (default) or json (an array of training run objects as sent by the server)
  -h, --help        Show this help
`,
  info: `Usage: ${USAGE.info}

Show a training run: base model, LoRA rank, owner, last request and latest checkpoints.

Options:
  --absolute        Show times as timestamps only
  --format FORMAT   table (default) or json (the training run object as sent by the server)
  -h, --help        Show this help
`,
};

/**
 * Runs `tinker-ts run <sub> …`. Returns the exit code.
 *
 * @example
 * ```ts
 * const code = await runRunCommand(["info", "sess-0:train:0"], io, () => rest);
 * ```
 */
export async function runRunCommand(args: string[], io: CliIO, restFactory: RestFactory): Promise<number> {
  return dispatch(args, io, {
    name: "run",
    help: RUN_HELP,
    subHelp: HELP,
    commands: { list: (a) => listRuns(a, io, restFactory), info: (a) => runInfo(a, io, restFactory) },
  });
}

async function listRuns(args: string[], io: CliIO, restFactory: RestFactory): Promise<number> {
  const { values, positionals } = parseCommand(
    args,
    { limit: { type: "string" }, absolute: { type: "boolean" }, quiet: { type: "boolean", short: "q" } },
    USAGE.list,
  );
  if (positionals.length > 0) throw new UsageError(`Unexpected argument ${JSON.stringify(positionals[0])}.`, USAGE.list);
  const format = outputFormat(values.format, USAGE.list);
  const limit = positiveInt(values.limit, "--limit", USAGE.list);
  const rest = restFactory();
  const runs: TrainingRunInfo[] = [];
  let cut = false;
  const progress = pageProgress(io, "training runs", limit);
  // The server lists runs newest first.
  for await (const run of rest.iterTrainingRuns({
    pageSize: Math.min(limit === undefined ? 100 : limit + 1, 100),
    onPage: progress.onPage,
  })) {
    if (limit !== undefined && runs.length >= limit) {
      cut = true;
      break;
    }
    runs.push(run);
  }
  progress.finish();
  if (format === "json") {
    writeJson(io, runs);
    return 0;
  }
  if (values.quiet === true) {
    for (const r of runs) io.stdout.write(`${r.training_run_id}\n`);
    return 0;
  }
  if (runs.length === 0) {
    io.stdout.write("No training runs.\n");
    return 0;
  }
  const look = lookOf(io, { absolute: values.absolute });
  io.stdout.write(
    renderColumns(
      [
        { header: "RUN ID" },
        { header: "BASE MODEL" },
        { header: "RANK", align: "right" },
        { header: "LAST REQUEST" },
        { header: "LAST CHECKPOINT", shrink: true },
      ],
      runs.map((r) => [
        r.training_run_id,
        r.base_model,
        r.is_lora ? String(r.lora_rank ?? "?") : "-",
        when(look, r.last_request_time),
        `${r.last_checkpoint?.tinker_path ?? "-"}${r.corrupted === true ? " (corrupted)" : ""}`,
      ]),
      look,
    ),
  );
  io.stdout.write(
    `${paint(look.color, "dim", listingFooter({ shown: runs.length, total: progress.totalCount(), cut, noun: "training run" }))}\n`,
  );
  return 0;
}

async function runInfo(args: string[], io: CliIO, restFactory: RestFactory): Promise<number> {
  const { values, positionals } = parseCommand(args, { absolute: { type: "boolean" } }, USAGE.info);
  const format = outputFormat(values.format, USAGE.info);
  const look = lookOf(io, { absolute: values.absolute });
  if (positionals.length !== 1) {
    throw new UsageError(positionals.length === 0 ? "Missing RUN_ID." : `Expected one RUN_ID, got ${positionals.length}.`, USAGE.info);
  }
  const run = await restFactory().getTrainingRun(positionals[0] as string);
  if (format === "json") {
    writeJson(io, run);
    return 0;
  }
  const ckpt = (c: TrainingRunInfo["last_checkpoint"]): string =>
    c === null || c === undefined ? "-" : `${c.tinker_path} (${formatBytes(c.size_bytes)}, ${when(look, c.time)})`;
  const fields: [string, string][] = [
    ["Run id", run.training_run_id],
    ["Base model", run.base_model],
    ["LoRA", run.is_lora ? `yes, rank ${run.lora_rank ?? "?"}` : "no"],
    ["Owner", run.model_owner],
    ["Corrupted", run.corrupted === true ? "yes" : "no"],
    ["Last request", whenLong(look, run.last_request_time)],
    ["Last checkpoint", ckpt(run.last_checkpoint)],
    ["Last sampler checkpoint", ckpt(run.last_sampler_checkpoint)],
  ];
  const meta = run.user_metadata;
  if (meta !== null && meta !== undefined && Object.keys(meta).length > 0) {
    fields.push([
      "Metadata",
      Object.entries(meta)
        .map(([k, v]) => `${k}=${v}`)
        .join(", "),
    ]);
  }
  io.stdout.write(renderFields(fields));
  return 0;
}
