/**
 * The shared harness of the benchmarks that measure the SDK against a local server in a child process (as a real
 * service would be): `bench:futures` and `bench:sampling`.
 *
 * Run as a script (`--child <dataDir> <futureDelayMs>`), this file is that child: it starts the local server and
 * reports every operation's timing and, on request, its event-loop utilisation over IPC. Imported, it gives the
 * parent's side: {@link startChild}, {@link measureBusy}, {@link settleEvents}, {@link quantile}, {@link now},
 * {@link writeResult} and {@link runBench}.
 *
 * Timestamps from both processes are epoch milliseconds from `performance.timeOrigin + performance.now()`.
 */
import { fork, type ChildProcess } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { cpus } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** One operation as the server ran it; `awaited` when a poll was already waiting for its result. */
export type OpEvent = { requestId: string; type: string; startedAt: number; completedAt: number; ok: boolean; awaited?: boolean };
type ChildMessage =
  | { kind: "ready"; baseUrl: string; apiKey: string }
  | ({ kind: "op" } & OpEvent)
  | { kind: "busy"; activeMs: number; idleMs: number };

/** A local server running in a child process. */
export type ChildServer = {
  proc: ChildProcess;
  baseUrl: string;
  apiKey: string;
  /** Operations reported so far, by request id. */
  ops: Map<string, OpEvent>;
  busy: (m: { activeMs: number; idleMs: number }) => void;
};

/** Epoch milliseconds, comparable across the two processes. */
export const now = (): number => performance.timeOrigin + performance.now();

async function child(dataDir: string, futureDelayMs: number): Promise<void> {
  const { startLocalServer } = await import("../src/server/index.js");
  const server = await startLocalServer({
    port: 0,
    dataDir,
    futureDelayMs,
    onOperation: (e) =>
      process.send?.({
        kind: "op",
        requestId: e.requestId,
        type: e.type,
        ok: e.ok,
        startedAt: performance.timeOrigin + e.startedAt,
        completedAt: performance.timeOrigin + e.completedAt,
        awaited: (e as { awaited?: boolean }).awaited === true,
      }),
  });
  // Event-loop utilisation between "mark" and "measure": how long the server's thread was busy (executing
  // operations and handling HTTP) versus idle (waiting for the client).
  let mark = performance.eventLoopUtilization();
  process.on("message", (m: { kind: string }) => {
    if (m.kind === "mark") mark = performance.eventLoopUtilization();
    if (m.kind === "measure") {
      const d = performance.eventLoopUtilization(mark);
      process.send?.({ kind: "busy", activeMs: d.active, idleMs: d.idle });
    }
  });
  process.send?.({ kind: "ready", baseUrl: server.baseUrl, apiKey: server.apiKey });
  process.on("disconnect", () => {
    void server.close().then(() => process.exit(0));
  });
}

/**
 * Starts the local server in a child process with its data in `dataDir`; `futureDelayMs` holds each result back
 * that long. `BENCH_CPU_PROF=<dir>` profiles the child.
 */
export async function startChild(dataDir: string, futureDelayMs = 0): Promise<ChildServer> {
  const profile = process.env["BENCH_CPU_PROF"];
  const proc = fork(fileURLToPath(import.meta.url), ["--child", dataDir, String(futureDelayMs)], {
    execArgv: ["--import", "tsx", ...(profile ? ["--cpu-prof", `--cpu-prof-dir=${profile}`] : [])],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const ops = new Map<string, OpEvent>();
  return new Promise((resolve, reject) => {
    proc.on("error", reject);
    proc.on("exit", (code) => reject(new Error(`server child exited with ${code}`)));
    const server: ChildServer = { proc, baseUrl: "", apiKey: "", ops, busy: () => undefined };
    proc.on("message", (m: ChildMessage) => {
      if (m.kind === "ready") resolve(Object.assign(server, { baseUrl: m.baseUrl, apiKey: m.apiKey }));
      else if (m.kind === "busy") server.busy(m);
      else ops.set(m.requestId, m);
    });
  });
}

/** Starts measuring the child's busy time (see {@link measureBusy}). */
export function markBusy(server: ChildServer): void {
  server.proc.send({ kind: "mark" });
}

/** The child's busy and idle time since the last {@link markBusy}. */
export async function measureBusy(server: ChildServer): Promise<{ activeMs: number; idleMs: number }> {
  return new Promise((resolve) => {
    server.busy = resolve;
    server.proc.send({ kind: "measure" });
  });
}

/** The `q` quantile of an ascending array. */
export function quantile(sorted: number[], q: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i] as number;
}

/** Waits (up to 2 s) until the child has reported every operation of `ids`. */
export async function settleEvents(ops: Map<string, OpEvent>, ids: string[]): Promise<void> {
  for (let i = 0; i < 200 && ids.some((id) => !ops.has(id)); i++) await new Promise((r) => setTimeout(r, 10));
}

/** The header fields every result file starts with. */
export function resultHeader(): Record<string, unknown> {
  return { date: new Date().toISOString(), node: process.version, machine: `${cpus().length} cores` };
}

/** Writes `bench-results/<name>` (creating the folder). */
export async function writeResult(name: string, text: string): Promise<void> {
  const outDir = fileURLToPath(new URL("../bench-results/", import.meta.url));
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, name), text);
}

/** Runs a benchmark's `main`, exiting 1 with the error printed when it fails. */
export function runBench(main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}

if (process.argv[2] === "--child") void child(process.argv[3] as string, Number(process.argv[4] ?? "0"));
