/**
 * Runs a TypeScript file in a child process the way a user runs it with `npx tsx file.ts` (here `node --import tsx`,
 * one process instead of tsx's two), with the repository's tsconfig.json, so `import ... from "tinker-ts"`
 * resolves to src/ through its `paths`. Used by test/readme-snippets.test.ts and test/examples.test.ts.
 *
 * @example
 * ```ts
 * const r = await runScript("examples/sample.ts", [], { cwd: dir, env: { TINKER_BASE_URL: url, TINKER_API_KEY: key } });
 * assert.equal(r.code, 0, r.stderr);
 * ```
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The repository root. */
export const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

/** What a finished child left: exit code (null if killed), signal, stdout, stderr, and the wall time. */
export interface ScriptResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
  timedOut: boolean;
}

/**
 * Runs `file` (absolute, or relative to the repository root) with `args`, in `cwd`, with `env` added to this
 * process's environment; kills it (SIGKILL) after `timeoutMs`.
 */
export function runScript(
  file: string,
  args: string[],
  options: { cwd: string; env: Record<string, string>; timeoutMs?: number },
): Promise<ScriptResult> {
  const started = performance.now();
  const tsx = import.meta.resolve("tsx");
  const script = fileURLToPath(new URL(file, `file://${repoRoot}`));
  const child = spawn(process.execPath, ["--import", tsx, script, ...args], {
    cwd: options.cwd,
    env: { ...process.env, NODE_OPTIONS: "", TSX_TSCONFIG_PATH: `${repoRoot}tsconfig.json`, NO_COLOR: "1", ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    stdout += d;
  });
  child.stderr.setEncoding("utf8").on("data", (d: string) => {
    stderr += d;
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, options.timeoutMs ?? 60_000);
  return new Promise((resolve, reject) => {
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Math.round(performance.now() - started), timedOut });
    });
  });
}
