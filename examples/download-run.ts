/**
 * Download a whole run: every checkpoint of a training run (training and sampler) into one directory, each
 * extracted into its own folder (`<run>_weights_<name>`, `:` becoming `_`), with progress. Checkpoints already
 * there are skipped unless --force. Each download streams, resumes after a dropped connection, is checked and is
 * installed atomically (a failure leaves no partial folder).
 *
 *   npx tinker-ts serve --port 8080                      # in another terminal; prints the two exports below
 *   export TINKER_BASE_URL=http://127.0.0.1:8080 TINKER_API_KEY=tml-local-...
 *   npx tsx examples/download-run.ts RUN_ID [-o ./checkpoints] [--force]
 *
 * RUN_ID is e.g. the `run:` line of examples/train-and-resume.ts, or one of `npx tinker-ts run list -q`.
 * Exits 1 if a download failed (the others are still done), 2 on bad arguments.
 */
import path from "node:path";
import { parseArgs } from "node:util";
import { checkpointDirName, DestinationExistsError, downloadCheckpoint, ServiceClient } from "tinker-ts";

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    output: { type: "string", short: "o", default: "./checkpoints" },
    force: { type: "boolean", default: false },
  },
});
const [runId] = positionals;
if (runId === undefined) {
  console.error("usage: npx tsx examples/download-run.ts RUN_ID [-o DIR] [--force]");
  process.exit(2);
}

await using service = new ServiceClient();
const rest = service.createRestClient();

const { checkpoints } = await rest.listCheckpoints(runId);
console.log(`${runId}: ${checkpoints.length} checkpoints → ${path.resolve(args.output)}`);

const mib = (n: number): string => `${(n / 1048576).toFixed(2)} MiB`;
let done = 0;
let failed = 0;
let skipped = 0;
let total = 0;
for (const [i, c] of checkpoints.entries()) {
  const label = `[${i + 1}/${checkpoints.length}] ${c.tinker_path}`;
  let lastShown = -1;
  try {
    const result = await downloadCheckpoint(rest, c.tinker_path, {
      outputDir: args.output,
      force: args.force,
      onProgress: ({ phase, bytes, totalBytes }) => {
        if (phase !== "download") return;
        const pct = totalBytes ? Math.floor((100 * bytes) / totalBytes) : 0;
        if (process.stdout.isTTY) process.stdout.write(`\r${label}  ${pct}%  ${mib(bytes)}`);
        else if (pct >= lastShown + 25) {
          lastShown = pct - (pct % 25); // a line at 0, 25, 50, 75 and 100 % when not on a terminal
          console.log(`${label}  ${pct}%  ${mib(bytes)}`);
        }
      },
    });
    if (process.stdout.isTTY) process.stdout.write("\n");
    console.log(`${label}  done → ${result.destination}`);
    done++;
    total += c.size_bytes ?? 0;
  } catch (err) {
    if (process.stdout.isTTY) process.stdout.write("\n");
    if (err instanceof DestinationExistsError) {
      console.log(`${label}  skipped: ${path.join(args.output, checkpointDirName(c.tinker_path))} exists (--force replaces it)`);
      skipped++;
      continue;
    }
    console.error(`${label}  failed: ${(err as Error).message}`);
    failed++;
  }
}
console.log(`downloaded ${done} of ${checkpoints.length} checkpoints (${mib(total)}), ${skipped} skipped, ${failed} failed`);
process.exitCode = failed > 0 ? 1 : 0;
