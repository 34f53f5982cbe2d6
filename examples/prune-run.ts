/**
 * Prune a run: list a training run's checkpoints, keep the newest N of each type (training, sampler) and delete
 * the rest. With --dry-run it only prints the plan. Checkpoints are billed until they expire or are deleted.
 *
 *   npx tinker-ts serve --port 8080                      # in another terminal; prints the two exports below
 *   export TINKER_BASE_URL=http://127.0.0.1:8080 TINKER_API_KEY=tml-local-...
 *   npx tsx examples/prune-run.ts RUN_ID [--keep 1] [--type training|sampler] [--dry-run]
 *
 * RUN_ID is e.g. the `run:` line of examples/train-and-resume.ts, or one of `npx tinker-ts run list -q`.
 * Exits 1 if a deletion failed (the others are still done), 2 on bad arguments.
 * (The CLI does the same: `tinker-ts checkpoint delete --run-id RUN --keep-last 1 --dry-run`.)
 */
import { parseArgs } from "node:util";
import { type Checkpoint, pruneCheckpoints, ServiceClient } from "tinker-ts";

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    keep: { type: "string", default: "1" },
    type: { type: "string" },
    "dry-run": { type: "boolean", default: false },
  },
});
const [runId] = positionals;
const keep = Number(args.keep);
const type = args.type;
if (runId === undefined || !Number.isInteger(keep) || keep < 0 || (type !== undefined && type !== "training" && type !== "sampler")) {
  console.error("usage: npx tsx examples/prune-run.ts RUN_ID [--keep N] [--type training|sampler] [--dry-run]");
  process.exit(2);
}

function describe(c: Checkpoint): string {
  const kib = c.size_bytes == null ? "?" : (c.size_bytes / 1024).toFixed(1);
  return `${c.tinker_path}  ${c.checkpoint_type}  ${kib} KiB  ${c.time}`;
}

await using service = new ServiceClient();
const rest = service.createRestClient();

const { plan, deleted, failed, bytes } = await pruneCheckpoints(rest, runId, { keepLast: keep, type, dryRun: args["dry-run"] });
for (const c of plan.keep) console.log(`keep    ${describe(c)}`);
for (const c of args["dry-run"] ? plan.delete : deleted) console.log(`${args["dry-run"] ? "would delete" : "deleted"}  ${describe(c)}`);
for (const f of failed) console.error(`failed to delete ${f.checkpoint.tinker_path}: ${(f.error as Error).message}`);

if (args["dry-run"]) {
  console.log(`dry run: would delete ${plan.delete.length} checkpoints (${plan.bytes} bytes), keep ${plan.keep.length}`);
} else {
  console.log(`deleted ${deleted.length} checkpoints (${bytes} bytes), kept ${plan.keep.length}, ${failed.length} failed`);
}
// What is left, as the service sees it now.
const { checkpoints } = await rest.listCheckpoints(runId);
console.log(`${runId} now has ${checkpoints.length} checkpoints`);
process.exitCode = failed.length > 0 ? 1 : 0;
