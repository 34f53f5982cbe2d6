/**
 * The CLI in a real terminal: each command runs in a pseudo-terminal made by util-linux `script` (window size set
 * with `stty`), and the captured screen is checked as a user would read it: the table fits the width with long
 * paths shortened in the middle, sizes right-aligned, relative times, colour (and none with NO_COLOR), and the
 * download bar redrawn in place that ends with a done line. Skipped, with the reason, where `script` is missing.
 * The download bar's speed and ETA are also checked without a terminal, with a fake clock.
 */
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { downloadProgress } from "../src/cli/progress.js";
import type { CliIO } from "../src/cli/util.js";
import { startLocalServer, type LocalServer } from "../src/server/index.js";
import { seedRun, type SeededRun } from "./helpers/seed-checkpoints.js";

const BIN = fileURLToPath(new URL("../bin/tinker-ts.mjs", import.meta.url));
const hasScript = spawnSync("script", ["--version"], { encoding: "utf8" }).status === 0;
const skip = hasScript ? false : "util-linux `script` is not installed (needed to run the CLI in a pseudo-terminal)";

let server: LocalServer;
let run: SeededRun;
let work: string;

const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** Runs the CLI in a pty of `cols` columns; resolves to the raw bytes the terminal received and the exit code. */
function inTerminal(args: string[], options: { cols?: number; env?: Record<string, string> } = {}): Promise<{ raw: string; code: number }> {
  const command = `stty cols ${options.cols ?? 80} rows 40; exec ${quote(process.execPath)} ${quote(BIN)} ${args.map(quote).join(" ")}`;
  const env: NodeJS.ProcessEnv = {
    PATH: process.env["PATH"],
    HOME: process.env["HOME"],
    TERM: "xterm-256color",
    TINKER_BASE_URL: server.baseUrl,
    TINKER_API_KEY: server.apiKey,
    ...options.env,
  };
  return new Promise((resolve) => {
    execFile("script", ["-q", "-e", "-c", command, "/dev/null"], { env, cwd: work, timeout: 60_000, maxBuffer: 8 << 20 }, (err, stdout) => {
      const code = err === null ? 0 : typeof err.code === "number" ? err.code : 1;
      assert.ok(!stdout.includes(server.apiKey), "API key printed");
      resolve({ raw: stdout, code });
    });
  });
}

/** What the terminal shows: each line after its last carriage return, without escape sequences. */
function screen(raw: string): string[] {
  return (
    raw
      .split("\n")
      .map((line) => line.replace(/\r$/, ""))
      .map((line) => line.slice(line.lastIndexOf("\r") + 1))
      // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping ANSI escape sequences, which start with ESC (0x1b)
      .map((line) => line.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, ""))
      .filter((line, i, all) => line !== "" || i < all.length - 1)
  );
}

before(async () => {
  if (skip !== false) return;
  server = await startLocalServer();
  run = await seedRun(server.baseUrl, server.apiKey, {
    saves: [
      { name: "a-long-checkpoint-name-so-the-path-needs-shortening-000100" },
      { name: "a-long-checkpoint-name-so-the-path-needs-shortening-000200" },
      { name: "sampler-export", kind: "sampler_weights" },
    ],
  });
  work = await mkdtemp(path.join(tmpdir(), "tinker-tty-"));
});

after(async () => {
  if (skip !== false) return;
  await server.close();
  await rm(work, { recursive: true, force: true });
});

// In order: the run list counts runs, the download adds a checkpoint.
describe("tinker-ts CLI in a terminal", { skip }, () => {
  test("checkpoint list fits 72 columns, shortens paths in the middle, right-aligns sizes, colours the header", async () => {
    const { raw, code } = await inTerminal(["checkpoint", "list", "--run-id", run.runId], { cols: 72 });
    assert.equal(code, 0, raw);
    const lines = screen(raw);
    for (const line of lines) assert.ok(line.length <= 72, `wider than the terminal (${line.length}): ${JSON.stringify(line)}`);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the ANSI bold escape (ESC [1m) is what is checked
    assert.match(raw, /\x1b\[1mPATH/, "bold header");
    assert.match(lines[0] ?? "", /^PATH +TYPE +SIZE +PUBLIC +CREATED +EXPIRES$/);
    const rows = lines.slice(1, 4);
    assert.match(rows[0] ?? "", /^tinker:\/\/\S*sampler-export +sampler /, "the newest first");
    assert.match(rows[1] ?? "", /^tinker:\/\/\S*…\S*-000200 +training /, "the middle cut, the name's end kept");
    assert.match(rows[2] ?? "", /^tinker:\/\/\S*…\S*-000100 +training /, "the oldest last");
    const sizeEnds = rows.map((r) => {
      const m = / \d+(\.\d+)? (B|KiB|MiB)/.exec(r);
      assert.ok(m, r);
      return m.index + m[0].length;
    });
    assert.equal(new Set(sizeEnds).size, 1, `sizes right-aligned: ${sizeEnds.join(",")}`);
    for (const r of rows) assert.match(r, /(just now|\d+ minutes? ago) +never$/);
    assert.match(lines[4] ?? "", /^3 checkpoints, /);
  });

  test("NO_COLOR: the same screen without any escape sequence", async () => {
    const { raw, code } = await inTerminal(["checkpoint", "list", "--run-id", run.runId], { cols: 72, env: { NO_COLOR: "1" } });
    assert.equal(code, 0, raw);
    assert.ok(!raw.includes("\x1b["), JSON.stringify(raw.slice(0, 200)));
    assert.match(screen(raw)[0] ?? "", /^PATH +TYPE/);
  });

  test("run list and --limit: the footer says how many more there are", async () => {
    await seedRun(server.baseUrl, server.apiKey, { saves: [] });
    const { raw, code } = await inTerminal(["run", "list", "--limit", "1"], { cols: 100 });
    assert.equal(code, 0, raw);
    const lines = screen(raw);
    assert.match(lines[0] ?? "", /^RUN ID +BASE MODEL +RANK +LAST REQUEST +LAST CHECKPOINT$/);
    assert.match(lines.at(-1) ?? "", /^1 of 2 training runs \(1 more, use --limit 2 to see them\)$/);
  });

  test("checkpoint download: a bar redrawn in place with ETA, then a done line and the destination", async () => {
    const res = await fetch(`${server.baseUrl}/local/admin/synthetic_checkpoint`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": server.apiKey },
      body: JSON.stringify({ run_id: run.runId, name: "big", size_bytes: 24 << 20 }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    const { tinker_path } = (await res.json()) as { tinker_path: string };
    const { raw, code } = await inTerminal(["checkpoint", "download", tinker_path, "-o", "dl"], { cols: 90 });
    assert.equal(code, 0, raw);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the coloured bar frame holds ANSI escapes (ESC = 0x1b)
    assert.match(raw, /\rDownloading [█░\x1b[0-9;m]+ +\d+% {2}[\d.]+ \w*B \/ 24\.\d MiB .*ETA /, "a bar frame");
    const lines = screen(raw);
    assert.match(lines.at(-2) ?? "", /^✓ Downloaded tinker:\/\/.*big: 24\.\d MiB in [\d.]+s \([\d.]+ \w*B\/s\)$/);
    assert.match(lines.at(-1) ?? "", /dl\/.*big$/, "the destination on stdout");
    for (const line of lines) assert.ok(line.length <= 90, line);
  });
});

test("download bar: speed over the last seconds and ETA, from a fake clock", () => {
  let out = "";
  const io: CliIO = {
    stdout: { write: () => true, isTTY: true },
    stderr: {
      write: (s: string) => {
        out += s;
        return true;
      },
      isTTY: true,
      columns: 100,
    },
    stdin: process.stdin,
    env: { NO_COLOR: "1" },
  };
  let now = 0;
  const p = downloadProgress(io, "tinker://run-1/weights/step-100", () => now);
  const total = 40 * 2 ** 20;
  for (let t = 0; t <= 2000; t += 250) {
    now = t;
    p.onProgress({ phase: "download", bytes: (t / 1000) * 5 * 2 ** 20, totalBytes: total }); // 5 MiB/s
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: removing the ANSI erase-line escape (ESC [K)
  const frame = out.slice(out.lastIndexOf("\r") + 1).replace(/\x1b\[K/g, "");
  assert.match(frame, /^Downloading █+░+ {2}25% {2}10\.0 MiB \/ 40\.0 MiB {2}5\.0 MiB\/s {2}ETA 6s$/);
  now = 8000;
  p.onProgress({ phase: "done", bytes: total, totalBytes: total });
  p.finish();
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the final line starts with the ANSI erase-line escape (ESC [K)
  assert.match(out, /\r\x1b\[K✓ Downloaded tinker:\/\/run-1\/weights\/step-100: 40\.0 MiB in 8\.0s \(5\.0 MiB\/s\)\n$/);
});
