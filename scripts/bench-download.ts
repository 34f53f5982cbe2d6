/**
 * Benchmark of `downloadCheckpoint` against the local server, compared in the same run with
 * `curl -s URL | tar -x` on the same signed URL.
 *
 *   npm run bench:download              (writes bench-results/download.json and prints a summary)
 *   npm run bench:download -- --quick   (256 MiB only: a smoke run)
 *
 * - The local server runs in its own child process (`src/server/serve-main.ts --port 0 --quiet`), so nothing
 *   the server does counts towards the client's memory.
 * - Synthetic checkpoints of 256 MiB and 1 GiB are created with `POST /local/admin/synthetic_checkpoint`. The
 *   1 GiB case is skipped when the temp dir has less than 4 × 1 GiB free (server copy + cached tar + the SDK's
 *   archive file + its extraction).
 * - Before timing, one warm-up fetch of the signed URL (to /dev/null) makes the server build its cached tar.
 * - Every SDK measurement runs in a fresh child process (scripts/bench-download-child.mjs, compiled build) that reports its wall time and peak RSS
 *   (`process.resourceUsage().maxRSS`) over IPC, plus its baseline RSS right after the imports.
 * - Each measurement is repeated twice, alternating the order (curl then SDK, then SDK then curl); the best
 *   wall time counts. Peak RSS is the largest over the SDK runs of a size (the conservative figure).
 * - One extra, untimed SDK run per size reports where the time goes, split at the first `extract` progress report
 *   (before it: the transfer, plus any extraction that overlaps it; after it: the rest of the extraction), and the
 *   peak RSS at that point; it passes an `onProgress` callback, so it is not used for the targets.
 *
 * Units: MB = 10^6 bytes, MB/s = archive bytes / 10^6 / wall seconds.
 * Targets: SDK/curl throughput ratio ≥ 0.9; SDK peak RSS ≤ 100 MB and within 10 MB between the two sizes.
 * Exit status: 0 whether or not a target is met (it is a benchmark), 1 on errors. All temp data is removed.
 */
import { fork, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, stat, statfs, writeFile } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const MiB = 1024 * 1024;
const REPEATS = 3;
const TARGET_RATIO = 0.9;
const TARGET_PEAK_RSS_MB = 100;
const TARGET_RSS_SPREAD_MB = 10;
const DISK_FACTOR = 4;
const ALL_SIZES = [
  { label: "256 MiB", name: "bench-256mib", bytes: 256 * MiB },
  { label: "1 GiB", name: "bench-1gib", bytes: 1024 * MiB },
] as const;
/** `--quick` measures the 256 MiB case only (a smoke run; the RSS difference between sizes is then n/a). */
const SIZES = process.argv.includes("--quick") ? ALL_SIZES.slice(0, 1) : ALL_SIZES;

const repoRoot = fileURLToPath(new URL("../", import.meta.url));
const childFile = fileURLToPath(new URL("./bench-download-child.mjs", import.meta.url));
const now = (): number => performance.now();
const mb = (bytes: number): number => bytes / 1e6;
const round = (x: number, digits = 2): number => +x.toFixed(digits);

// ---------------------------------------------------------------------------------------------------------------
// Child mode: one downloadCheckpoint in a fresh process.

type RunRequest = { kind: "run"; baseUrl: string; apiKey: string; tinkerPath: string; outputDir: string; phases: boolean };
/** Diagnostic split of one run at the first `extract` progress report and at the `done` report. */
type PhaseInfo = {
  until_extract_report_s: number;
  extract_report_to_done_s: number;
  done_to_return_s: number;
  peak_rss_at_extract_report_mb: number;
};
type ChildReply =
  | { kind: "ready"; baselineRssMB: number; baselineMaxRssMB: number }
  | { kind: "result"; wallS: number; bytes: number; destination: string; peakRssMB: number; warmMaxRssMB: number; phases?: PhaseInfo }
  | { kind: "error"; message: string };

// ---------------------------------------------------------------------------------------------------------------
// Parent helpers.

const children = new Set<ChildProcess>();
/** Set on SIGINT/SIGTERM: the signal handler cleans up and exits 130, so errors caused by the teardown are not reported. */
let interrupted = false;

function track(proc: ChildProcess): ChildProcess {
  children.add(proc);
  proc.once("exit", () => children.delete(proc));
  return proc;
}

async function stopChild(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  proc.kill("SIGTERM");
  const timer = setTimeout(() => proc.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(timer);
}

type Server = { proc: ChildProcess; baseUrl: string; apiKey: string };

/** Starts `serve-main.ts --port 0` in a child process and reads the base URL and API key it prints. */
function startServer(dataDir: string): Promise<Server> {
  const proc = track(
    spawn(process.execPath, ["--import", "tsx", "src/server/serve-main.ts", "--port", "0", "--data-dir", dataDir, "--quiet"], {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "pipe"],
    }),
  );
  return new Promise((resolve, reject) => {
    let out = "";
    let errText = "";
    let baseUrl: string | undefined;
    let apiKey: string | undefined;
    const timer = setTimeout(() => fail(new Error(`the local server did not start within 60 s\n${out}${errText}`)), 60_000);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      reject(err);
    };
    let pending = "";
    proc.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
      errText += chunk;
      pending += chunk;
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const l of lines) if (l.trim() !== "" && !/: shutting down$/.test(l)) process.stderr.write(`[server] ${l}\n`);
    });
    proc.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      if (baseUrl !== undefined && apiKey !== undefined) return;
      out += chunk;
      baseUrl ??= /^export TINKER_BASE_URL=(\S+)$/m.exec(out)?.[1];
      apiKey ??= /^export TINKER_API_KEY=(\S+)$/m.exec(out)?.[1];
      if (baseUrl !== undefined && apiKey !== undefined) {
        clearTimeout(timer);
        resolve({ proc, baseUrl, apiKey });
      }
    });
    proc.once("error", fail);
    proc.once("exit", (code, signal) => fail(new Error(`the local server exited early (${code ?? signal})\n${errText}`)));
  });
}

async function createSynthetic(server: Server, name: string, sizeBytes: number): Promise<string> {
  const res = await fetch(`${server.baseUrl}/local/admin/synthetic_checkpoint`, {
    method: "POST",
    headers: { "x-api-key": server.apiKey, "content-type": "application/json" },
    body: JSON.stringify({ name, size_bytes: sizeBytes }),
  });
  const body = (await res.json().catch(() => undefined)) as { tinker_path?: unknown } | undefined;
  if (!res.ok || typeof body?.tinker_path !== "string") {
    throw new Error(`creating the synthetic checkpoint failed: HTTP ${res.status} ${JSON.stringify(body)}`);
  }
  return body.tinker_path;
}

/** Fetches the whole URL and discards it (builds the server's cached tar); returns the byte count. */
async function warmUp(url: string, haveCurl: boolean): Promise<number> {
  if (haveCurl) {
    const r = spawnSync("curl", ["-sSf", "-o", "/dev/null", "-w", "%{size_download}", url], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`warm-up curl failed (exit ${r.status}): ${r.stderr}`);
    return Number(r.stdout.trim());
  }
  const res = await fetch(url);
  if (!res.ok || res.body === null) throw new Error(`warm-up fetch failed: HTTP ${res.status}`);
  let n = 0;
  for await (const chunk of res.body) n += (chunk as Uint8Array).length;
  return n;
}

/** Times `curl -s URL | tar -x -C dir` (URL and dir passed as arguments, never interpolated). */
function timeCurl(url: string, dir: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const start = now();
    const proc = track(
      spawn("bash", ["-c", 'set -o pipefail; curl -sSf "$1" | tar -x -C "$2"', "bench-curl", url, dir], {
        stdio: ["ignore", "ignore", "pipe"],
      }),
    );
    let errText = "";
    proc.stderr?.setEncoding("utf8").on("data", (c: string) => (errText += c));
    proc.once("error", reject);
    proc.once("close", (code) => {
      const wall = (now() - start) / 1000;
      if (code === 0) resolve(wall);
      else reject(new Error(`curl | tar exited with ${code}: ${errText}`));
    });
  });
}

type SdkRun = {
  wallS: number;
  bytes: number;
  destination: string;
  peakRssMB: number;
  /** Peak RSS after one REST call, before the download: the first-use cost of the client stack (JIT, zod). */
  warmMaxRssMB: number;
  baselineRssMB: number;
  baselineMaxRssMB: number;
  phases?: PhaseInfo;
};

/** Runs one downloadCheckpoint in a fresh child process. */
function timeSdk(server: Server, tinkerPath: string, outputDir: string, phases: boolean): Promise<SdkRun> {
  const proc = track(
    // The compiled build under plain node, as users run the SDK (no TypeScript loader in the measured process).
    fork(childFile, [], { execArgv: [], cwd: repoRoot, stdio: ["ignore", "inherit", "inherit", "ipc"] }),
  );
  return new Promise((resolve, reject) => {
    let baseline: { baselineRssMB: number; baselineMaxRssMB: number } | undefined;
    let settled = false;
    const done = (f: () => void): void => {
      if (settled) return;
      settled = true;
      f();
    };
    proc.once("error", (e) => done(() => reject(e)));
    proc.once("exit", (code, signal) => done(() => reject(new Error(`SDK child exited (${code ?? signal}) without a result`))));
    proc.on("message", (raw) => {
      const m = raw as ChildReply;
      if (m.kind === "ready") {
        baseline = { baselineRssMB: m.baselineRssMB, baselineMaxRssMB: m.baselineMaxRssMB };
        const req: RunRequest = { kind: "run", baseUrl: server.baseUrl, apiKey: server.apiKey, tinkerPath, outputDir, phases };
        proc.send(req);
      } else if (m.kind === "result") {
        const run: SdkRun = {
          wallS: m.wallS,
          bytes: m.bytes,
          destination: m.destination,
          peakRssMB: m.peakRssMB,
          warmMaxRssMB: m.warmMaxRssMB,
          ...baseline!,
        };
        if (m.phases !== undefined) run.phases = m.phases;
        done(() => resolve(run));
      } else {
        done(() => reject(new Error(`downloadCheckpoint failed in the child: ${m.message}`)));
      }
    });
  });
}

/** Checks that an extracted checkpoint is complete and its weights file has the expected size. */
async function verifyExtracted(dir: string, weightsBytes: number, who: string): Promise<void> {
  const weights = await stat(join(dir, "adapter_model.safetensors")).catch(() => undefined);
  const marker = await stat(join(dir, "checkpoint_complete")).catch(() => undefined);
  if (weights?.size !== weightsBytes || marker === undefined) {
    throw new Error(
      `${who}: extracted checkpoint in ${dir} is incomplete (weights ${weights?.size ?? "missing"} bytes, expected ${weightsBytes})`,
    );
  }
}

function hasCurl(): boolean {
  const r = spawnSync("bash", ["-c", "command -v curl && command -v tar"], { encoding: "utf8" });
  return r.status === 0;
}

// ---------------------------------------------------------------------------------------------------------------
// Main.

type SizeResult = {
  label: string;
  size_bytes: number;
  archive_bytes: number;
  curl: { runs_s: number[]; best_s: number; mb_per_s: number } | null;
  sdk: {
    /** order: 1 = measured before curl in its repeat, 2 = after. */
    runs: Array<{
      order: number;
      wall_s: number;
      peak_rss_mb: number;
      baseline_rss_mb: number;
      baseline_max_rss_mb: number;
      warm_max_rss_mb: number;
    }>;
    best_s: number;
    mb_per_s: number;
    peak_rss_mb: number;
    baseline_rss_mb: number;
    /** Largest (peak − baseline) over the runs: what the download itself adds. */
    peak_minus_baseline_mb: number;
    peak_minus_warm_mb: number;
  };
  ratio_sdk_over_curl: number | null;
  diagnostic_phases: (PhaseInfo & { wall_s: number; peak_rss_mb: number }) | null;
};

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), "tinker-bench-download-"));
  const cleanup = async (): Promise<void> => {
    await Promise.all([...children].map((c) => stopChild(c)));
    await rm(work, { recursive: true, force: true, maxRetries: 3 });
  };
  const onSignal = (sig: NodeJS.Signals): void => {
    interrupted = true;
    console.error(`\n${sig}: cleaning up ${work}`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  const notes: string[] = [];
  const results: SizeResult[] = [];
  // The SDK is measured as users run it: the compiled build under plain node.
  const build = spawnSync("npx", ["tsc", "-p", "tsconfig.build.json"], { cwd: repoRoot, stdio: "inherit" });
  if (build.status !== 0) throw new Error("npm run build failed");
  // The SDK source is identified in the results (and a change during the run is flagged: each SDK child
  // imports the sources afresh).
  const sdkSourceHash = async (): Promise<string> =>
    createHash("sha256")
      .update(await readFile(join(repoRoot, "src", "download", "download.ts")))
      .digest("hex")
      .slice(0, 16);
  const sourceAtStart = await sdkSourceHash();
  const curlAvailable = hasCurl();
  if (!curlAvailable) notes.push("curl (or tar) not found: the curl | tar comparison is skipped; the SDK is measured alone.");

  const fs = await statfs(work);
  const freeBytes = fs.bavail * fs.bsize;
  const sizes = SIZES.filter((s) => {
    const need = DISK_FACTOR * s.bytes;
    if (freeBytes >= need) return true;
    notes.push(
      `${s.label} case skipped: ${round(freeBytes / MiB / 1024)} GiB free in ${tmpdir()}, need ~${round(need / MiB / 1024)} GiB (${DISK_FACTOR}× the size).`,
    );
    return false;
  });
  for (const n of notes) console.log(`note: ${n}`);

  try {
    if (sizes.length > 0) {
      const server = await startServer(join(work, "server"));
      const { ServiceClient } = await import("../src/index.js");
      const service = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey });
      const rest = service.createRestClient();
      try {
        for (const size of sizes) {
          console.log(`\n== ${size.label}: creating the synthetic checkpoint …`);
          let t = now();
          const tinkerPath = await createSynthetic(server, size.name, size.bytes);
          console.log(`   ${tinkerPath} created in ${round((now() - t) / 1000, 1)} s`);
          const { url } = await rest.getCheckpointArchiveUrlFromTinkerPath(tinkerPath);
          t = now();
          const archiveBytes = await warmUp(url, curlAvailable);
          console.log(`   warm-up fetch (builds the server's tar): ${archiveBytes} bytes in ${round((now() - t) / 1000, 1)} s`);

          const curlRuns: number[] = [];
          const sdkRuns: Array<SdkRun & { order: number }> = [];
          let runNo = 0;
          const runCurl = async (): Promise<void> => {
            const dir = join(work, `curl-${runNo++}`);
            await mkdir(dir);
            const wall = await timeCurl(url, dir);
            await verifyExtracted(dir, size.bytes, "curl | tar");
            await rm(dir, { recursive: true, force: true });
            curlRuns.push(wall);
            console.log(`   curl | tar   ${round(wall, 3)} s  ${round(mb(archiveBytes) / wall, 1)} MB/s`);
          };
          const runSdk = async (phases: boolean): Promise<SdkRun> => {
            const dir = join(work, `sdk-${runNo++}`);
            const run = await timeSdk(server, tinkerPath, dir, phases);
            if (run.bytes !== archiveBytes) throw new Error(`SDK reported ${run.bytes} archive bytes, expected ${archiveBytes}`);
            await verifyExtracted(run.destination, size.bytes, "downloadCheckpoint");
            await rm(dir, { recursive: true, force: true });
            return run;
          };
          for (let rep = 0; rep < REPEATS; rep++) {
            const order: Array<"curl" | "sdk"> = rep % 2 === 0 ? ["curl", "sdk"] : ["sdk", "curl"];
            for (const [pos, which] of order.entries()) {
              if (which === "curl") {
                if (curlAvailable) await runCurl();
              } else {
                const run = await runSdk(false);
                sdkRuns.push({ ...run, order: curlAvailable ? pos + 1 : 1 });
                console.log(
                  `   SDK          ${round(run.wallS, 3)} s  ${round(mb(archiveBytes) / run.wallS, 1)} MB/s  peak RSS ${run.peakRssMB} MB (baseline ${run.baselineRssMB} MB)`,
                );
              }
            }
          }
          const diag = await runSdk(true);
          if (diag.phases !== undefined) {
            console.log(
              `   diagnostic SDK run: ${diag.phases.until_extract_report_s} s until the first extract report, ${diag.phases.extract_report_to_done_s} s from there to done, ` +
                `${diag.phases.done_to_return_s} s to return (peak RSS ${diag.phases.peak_rss_at_extract_report_mb} MB at the first extract report, ${diag.peakRssMB} MB at the end)`,
            );
          }

          const sdkBest = Math.min(...sdkRuns.map((r) => r.wallS));
          const curlBest = curlRuns.length > 0 ? Math.min(...curlRuns) : null;
          const peak = Math.max(...sdkRuns.map((r) => r.peakRssMB));
          const baseline = Math.max(...sdkRuns.map((r) => r.baselineRssMB));
          results.push({
            label: size.label,
            size_bytes: size.bytes,
            archive_bytes: archiveBytes,
            curl:
              curlBest === null
                ? null
                : { runs_s: curlRuns.map((x) => round(x, 3)), best_s: round(curlBest, 3), mb_per_s: round(mb(archiveBytes) / curlBest, 1) },
            sdk: {
              runs: sdkRuns.map((r) => ({
                order: r.order,
                wall_s: round(r.wallS, 3),
                peak_rss_mb: r.peakRssMB,
                baseline_rss_mb: r.baselineRssMB,
                baseline_max_rss_mb: r.baselineMaxRssMB,
                warm_max_rss_mb: r.warmMaxRssMB,
              })),
              best_s: round(sdkBest, 3),
              mb_per_s: round(mb(archiveBytes) / sdkBest, 1),
              peak_rss_mb: peak,
              baseline_rss_mb: baseline,
              peak_minus_baseline_mb: round(Math.max(...sdkRuns.map((r) => r.peakRssMB - r.baselineRssMB)), 1),
              peak_minus_warm_mb: round(Math.max(...sdkRuns.map((r) => r.peakRssMB - r.warmMaxRssMB)), 1),
            },
            ratio_sdk_over_curl: curlBest === null ? null : round(curlBest / sdkBest, 3),
            diagnostic_phases:
              diag.phases === undefined ? null : { ...diag.phases, wall_s: round(diag.wallS, 3), peak_rss_mb: diag.peakRssMB },
          });
          // Free the server's copy and cached tar before the next size.
          await rest.deleteCheckpointFromTinkerPath(tinkerPath).catch(() => undefined);
        }
      } finally {
        await service.close().catch(() => undefined);
      }
    }
  } finally {
    await cleanup();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }

  if ((await sdkSourceHash()) !== sourceAtStart) {
    notes.push("src/download/download.ts changed during the run: the SDK runs may have measured different versions; run again.");
  }

  // Targets.
  const ratios = results.filter((r) => r.ratio_sdk_over_curl !== null);
  const ratioPass = ratios.length === 0 ? null : ratios.every((r) => (r.ratio_sdk_over_curl as number) >= TARGET_RATIO);
  const peakPass = results.length === 0 ? null : results.every((r) => r.sdk.peak_rss_mb <= TARGET_PEAK_RSS_MB);
  const spread =
    results.length >= 2
      ? round(Math.abs((results.at(-1) as SizeResult).sdk.peak_rss_mb - (results[0] as SizeResult).sdk.peak_rss_mb), 1)
      : null;
  if (results.length < 2) notes.push("Only one size was measured: the RSS difference between sizes is not available.");
  const spreadPass = spread === null ? null : spread <= TARGET_RSS_SPREAD_MB;

  const output = {
    date: new Date().toISOString(),
    node: process.version,
    cpu_count: cpus().length,
    platform: `${process.platform} ${process.arch}`,
    temp_dir_free_bytes: freeBytes,
    curl_available: curlAvailable,
    sdk_download_ts_sha256_16: sourceAtStart,
    method: {
      repeats: REPEATS,
      order: "repeat 1: curl then SDK; repeat 2: SDK then curl; best wall time counts",
      curl: 'bash -c \'set -o pipefail; curl -sSf "$1" | tar -x -C "$2"\' (wall time incl. process start)',
      sdk: "downloadCheckpoint(rest, path, { outputDir }) in a fresh child process per run (wall time excl. process start, incl. the signed-URL REST call)",
      peak_rss:
        "process.resourceUsage().maxRSS of the SDK child, largest over the timed runs of a size; baseline = RSS right after importing the compiled SDK (dist/, plain node)",
      warm_up: "one full fetch of the signed URL to /dev/null before timing (the server builds its tar on first request)",
      units: "MB = 10^6 bytes; MB/s = archive bytes / 10^6 / s",
    },
    sizes: results,
    peak_rss_difference_mb: spread,
    targets: {
      ratio_min: TARGET_RATIO,
      ratio_pass: ratioPass,
      ratio_by_size: Object.fromEntries(
        ratios.map((r) => [r.label, { ratio: r.ratio_sdk_over_curl, pass: (r.ratio_sdk_over_curl as number) >= TARGET_RATIO }]),
      ),
      peak_rss_max_mb: TARGET_PEAK_RSS_MB,
      peak_rss_pass: peakPass,
      peak_rss_by_size: Object.fromEntries(
        results.map((r) => [r.label, { peak_rss_mb: r.sdk.peak_rss_mb, pass: r.sdk.peak_rss_mb <= TARGET_PEAK_RSS_MB }]),
      ),
      peak_rss_difference_max_mb: TARGET_RSS_SPREAD_MB,
      peak_rss_difference_pass: spreadPass,
    },
    notes,
  };

  // Summary table.
  const rows: string[][] = [["size", "curl s", "curl MB/s", "SDK s", "SDK MB/s", "SDK/curl", "baseline RSS", "peak RSS"]];
  for (const r of results) {
    rows.push([
      r.label,
      r.curl ? r.curl.best_s.toFixed(3) : "-",
      r.curl ? r.curl.mb_per_s.toFixed(1) : "-",
      r.sdk.best_s.toFixed(3),
      r.sdk.mb_per_s.toFixed(1),
      r.ratio_sdk_over_curl === null ? "-" : r.ratio_sdk_over_curl.toFixed(3),
      `${r.sdk.baseline_rss_mb.toFixed(1)} MB`,
      `${r.sdk.peak_rss_mb.toFixed(1)} MB`,
    ]);
  }
  const widths = (rows[0] as string[]).map((_, i) => Math.max(...rows.map((row) => (row[i] as string).length)));
  const line = (row: string[]): string =>
    row.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join("  ");
  const flag = (p: boolean | null): string => (p === null ? "n/a" : p ? "PASS" : "FAIL");
  const title = `downloadCheckpoint vs curl | tar (best of ${REPEATS}; ${process.version}, ${cpus().length} CPUs, ${output.date})`;
  const table = [line(rows[0] as string[]), widths.map((w) => "-".repeat(w)).join("  "), ...rows.slice(1).map(line)];
  const verdicts = [
    `target SDK/curl ≥ ${TARGET_RATIO}: ${flag(ratioPass)}`,
    `target peak RSS ≤ ${TARGET_PEAK_RSS_MB} MB: ${flag(peakPass)}`,
    `target peak RSS difference between sizes ≤ ${TARGET_RSS_SPREAD_MB} MB: ${flag(spreadPass)}${spread === null ? "" : ` (${spread} MB)`}`,
  ];
  const phaseLines = results
    .filter((r) => r.diagnostic_phases !== null)
    .map((r) => {
      const p = r.diagnostic_phases as NonNullable<SizeResult["diagnostic_phases"]>;
      return `${r.label}: ${p.until_extract_report_s} s until the first \`extract\` report, ${p.extract_report_to_done_s} s from there to \`done\`, ${p.done_to_return_s} s to return (diagnostic run with onProgress, ${p.wall_s} s in all)`;
    });
  const baselines = results.map(
    (r) =>
      `${r.label}: baseline ${r.sdk.baseline_rss_mb} MB, peak − baseline ${r.sdk.peak_minus_baseline_mb} MB, of which the transfer itself (peak − RSS after a first REST call) ${r.sdk.peak_minus_warm_mb} MB`,
  );
  console.log(`\n${title}\n`);
  for (const l of table) console.log(l);
  console.log("");
  for (const l of verdicts) console.log(l);
  for (const n of notes) console.log(`note: ${n}`);

  const outDir = join(repoRoot, "bench-results");
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, "download.json"), JSON.stringify(output, null, 2) + "\n");
  const md = [
    `# ${title}`,
    "",
    "Generated by `npm run bench:download` (scripts/bench-download.ts); all figures are in download.json.",
    "",
    "```text",
    ...table,
    "```",
    "",
    ...verdicts.map((v) => `- ${v}`),
    "",
    "SDK memory (fresh child process per run; baseline = RSS after importing the compiled SDK):",
    "",
    ...baselines.map((b) => `- ${b}`),
    "",
    "Where the SDK's time goes:",
    "",
    ...phaseLines.map((p) => `- ${p}`),
    ...(notes.length > 0 ? ["", "Notes:", "", ...notes.map((n) => `- ${n}`)] : []),
    "",
  ];
  await writeFile(join(outDir, "download.md"), md.join("\n"));
  console.log("wrote bench-results/download.json and bench-results/download.md");
}

if (process.argv[2] === "--sdk-child") {
  console.error("the SDK child is scripts/bench-download-child.mjs");
} else {
  main().catch((err: unknown) => {
    if (interrupted) return;
    console.error(err);
    process.exit(1);
  });
}
