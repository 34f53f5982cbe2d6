/**
 * What importing the package costs: the resident memory and wall time of `import("tinker-ts")` (the SDK) and of
 * `import("tinker-ts/server")` (the bundled local server, with node-tar), each in a fresh Node process, against
 * a process that imports nothing.
 *
 *   npm run bench:import                     # builds dist/, writes bench-results/import.json, prints a table
 *   npm run bench:import -- --label before   # stores the figures under another label (default "current")
 *
 * Each scenario runs RUNS times in its own `node` process (after one warm-up run so the file system cache is
 * warm); the median is reported. `import_ms` is the wall time of the dynamic `import()` alone, `cpu_ms` the CPU
 * time it used (steadier than wall time on a busy machine); `rss_mb` is the
 * process's resident set after it; `rss_added_mb` subtracts the median RSS of the empty process.
 * The packages are imported by name (the package refers to itself through its `exports` map), so the figures
 * are those of the built files a user installs.
 */
import { execFile } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { cpus } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";

const run = promisify(execFile);
const root = fileURLToPath(new URL("../", import.meta.url));
const RUNS = 15;
const labelIndex = process.argv.indexOf("--label");
const label = labelIndex === -1 ? "current" : (process.argv[labelIndex + 1] ?? "current");

/** Each scenario: the specifiers imported, in order. */
const SCENARIOS: Record<string, string[]> = {
  empty: [],
  sdk: ["tinker-ts"],
  server: ["tinker-ts/server"],
  "sdk+server": ["tinker-ts", "tinker-ts/server"],
};

type Sample = { import_ms: number; cpu_ms: number; rss_mb: number; heap_mb: number };

async function sample(specifiers: string[]): Promise<Sample> {
  const code = `
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    for (const s of ${JSON.stringify(specifiers)}) await import(s);
    const t1 = performance.now();
    const c1 = process.cpuUsage(c0);
    const m = process.memoryUsage();
    console.log(JSON.stringify({ import_ms: t1 - t0, cpu_ms: (c1.user + c1.system) / 1000, rss_mb: m.rss / 2 ** 20, heap_mb: m.heapUsed / 2 ** 20 }));
  `;
  const { stdout } = await run(process.execPath, ["--input-type=module", "-e", code], { cwd: root });
  return JSON.parse(stdout.trim()) as Sample;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

const round = (x: number, digits = 1): number => Number(x.toFixed(digits));

async function main(): Promise<void> {
  if (!process.argv.includes("--no-build")) await run("npx", ["tsc", "-p", "tsconfig.build.json"], { cwd: root });
  const results: Record<
    string,
    { import_ms: number; cpu_ms: number; rss_mb: number; rss_added_mb: number; heap_mb: number } | { error: string }
  > = {};
  let emptyRss = 0;
  for (const [name, specifiers] of Object.entries(SCENARIOS)) {
    try {
      await sample(specifiers); // warm-up
      const samples: Sample[] = [];
      for (let i = 0; i < RUNS; i++) samples.push(await sample(specifiers));
      const rss = median(samples.map((s) => s.rss_mb));
      if (name === "empty") emptyRss = rss;
      results[name] = {
        import_ms: round(median(samples.map((s) => s.import_ms))),
        cpu_ms: round(median(samples.map((s) => s.cpu_ms))),
        rss_mb: round(rss),
        rss_added_mb: round(rss - emptyRss),
        heap_mb: round(median(samples.map((s) => s.heap_mb))),
      };
    } catch (err) {
      results[name] = { error: (err as Error).message.split("\n").find((l) => /Error/.test(l)) ?? "failed" };
    }
  }
  const outDir = join(root, "bench-results");
  await mkdir(outDir, { recursive: true });
  const file = join(outDir, "import.json");
  let all: Record<string, unknown> = {};
  try {
    all = JSON.parse(await readFile(file, "utf8")) as Record<string, unknown>;
  } catch {
    // first run
  }
  all[label] = { date: new Date().toISOString(), node: process.version, machine: `${cpus().length} cores`, runs: RUNS, results };
  await writeFile(file, `${JSON.stringify(all, null, 2)}\n`);
  console.log(`import cost (${label}; median of ${RUNS} fresh processes, node ${process.version})`);
  console.log("scenario      import ms     CPU ms   RSS MiB   +RSS MiB   heap MiB");
  for (const [name, r] of Object.entries(results)) {
    if ("error" in r) console.log(`${name.padEnd(12)}  ${r.error}`);
    else
      console.log(
        `${name.padEnd(12)}  ${String(r.import_ms).padStart(9)}  ${String(r.cpu_ms).padStart(9)}  ${String(r.rss_mb).padStart(8)}  ${String(r.rss_added_mb).padStart(9)}  ${String(r.heap_mb).padStart(9)}`,
      );
  }
  console.log(`written to ${file}`);
}

await main();
