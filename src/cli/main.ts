/**
 * The `tinker-ts` command line: checkpoint and training-run management against a Tinker server, and
 * `serve` for the bundled local server.
 *
 * Reads `TINKER_BASE_URL` and `TINKER_API_KEY`. Exit codes: 0 success, 1 failure (reason on stderr as
 * `error: <ErrorClass>: <message>`), 2 usage error. The API key is never printed.
 *
 * @module
 */
import { realpathSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { APIConnectionError, APITimeoutError, ConfigurationError, ProxyError } from "../core/errors.js";
import { DestinationExistsError } from "../download/errors.js";
import { redact } from "../internal/redact.js";
import type { RetryEvent } from "../internal/retry.js";
import { SDK_VERSION } from "../internal/transport.js";
import { RestClient } from "../rest-client.js";
import { runCheckpointCommand } from "./checkpoint.js";
import { runRunCommand } from "./run.js";
import { runSampleCommand } from "./sample.js";
import { paint, wantsColor } from "./term.js";
import { runAuditCommand, runSessionCommand, runWhoamiCommand } from "./account.js";
import { cliLogOptions, UsageError, type CliIO } from "./util.js";

/** Top-level help. */
export const MAIN_HELP = `Usage: tinker-ts <command> [options]

Manage Tinker training runs and checkpoints, or run the bundled local Tinker-compatible server.

Commands:
  checkpoint list [--run-id ID] [--limit N]        List checkpoints
  checkpoint info PATH                             Show a checkpoint and its model configuration
  checkpoint download PATH [-o DIR] [--force]      Download and extract a checkpoint
  checkpoint publish PATH | unpublish PATH         Make a checkpoint public / private
  checkpoint set-ttl PATH (--ttl 7d | --remove)    Set or remove a checkpoint's time to live
  checkpoint delete PATH... | --run-id ID [...]    Delete checkpoints (with a plan and confirmation)
  run list [--limit N]                             List training runs
  run info RUN_ID                                  Show a training run
  session list | info SESSION_ID                   List sessions / show a session's runs and samplers
  whoami                                           Show who the credential belongs to (JWT mode)
  audit [--day YYYY-MM-DD] [--checkpoints]         Show the audit log of a day
  sample PATH --prompt-tokens 1,2,3 [...]          Sample token ids (with logprobs) from a checkpoint
  serve [--port N] [--data-dir DIR]                Start the local Tinker-compatible server

--verbose (anywhere on the line) logs every HTTP request on stderr: method, path, status, attempt, time and
request id (never a key or token); the same as TINKER_LOG=debug.
Listing and info commands take --format table|json and --absolute (timestamps instead of "3 hours ago");
listings take -q (paths or ids only). Every command takes --help; tinker-ts --version prints the version.
Colour is used on terminals unless NO_COLOR is set.

Environment:
  TINKER_BASE_URL   Server URL, e.g. http://127.0.0.1:8080
  TINKER_API_KEY    API key (sent as X-API-Key, never printed)
  TINKER_CREDENTIAL_CMD  Command that prints a credential (instead of TINKER_API_KEY, for JWT deployments)
  TINKER_LOG        Log level on stderr: debug, info, warn (default), error or off
To try things locally, run "tinker-ts serve" and export the two variables it prints.
`;

/** The default I/O: the process's streams and environment. */
export function processIO(): CliIO {
  return { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env };
}

/** How long the CLI retries a request (ms): a command should answer within a minute, not wait out an outage. */
export const CLI_RETRY_BUDGET_MS = 30_000;

/**
 * Builds the REST client from `TINKER_BASE_URL`/`TINKER_API_KEY`, with the CLI's short retry budget
 * ({@link CLI_RETRY_BUDGET_MS}); each retry prints a "retrying…" line on `stderr` when given.
 *
 * @throws {ConfigurationError} when nothing is configured (the message says how to start the local server) or the key
 *   is missing or malformed.
 * @example
 * ```ts
 * const rest = restFromEnv(process.env, process.stderr);
 * ```
 */
export function restFromEnv(env: NodeJS.ProcessEnv, stderr?: { write(text: string): unknown }): RestClient {
  const secrets = [env["TINKER_API_KEY"]?.trim()];
  return RestClient.fromEnv(
    {
      retryBudgetMs: CLI_RETRY_BUDGET_MS,
      ...(stderr === undefined ? {} : cliLogOptions({ env, stderr })),
      ...(stderr === undefined ? {} : { onRetry: (e: RetryEvent) => stderr.write(redact(`${retryLine(e)}\n`, secrets)) }),
    },
    env,
  );
}

/** `retrying GET /api/v1/training_runs in 1.0 s (503 Service Unavailable; retry 1, 29 s of the 30 s budget left)…` */
function retryLine(e: RetryEvent): string {
  const left = Math.max(0, Math.round((e.budgetMs - e.elapsedMs) / 1000));
  return `retrying ${e.method} ${e.path} in ${(e.delayMs / 1000).toFixed(1)} s (${e.reason}; retry ${e.attempt}, ${left} s of the ${Math.round(e.budgetMs / 1000)} s budget left)…`;
}

/**
 * Runs the CLI with `argv` (without `node` and the script) and returns the exit code. Never throws.
 *
 * @example
 * ```ts
 * process.exitCode = await main(["checkpoint", "list", "--format", "json"]);
 * ```
 */
export async function main(argv: string[] = process.argv.slice(2), io: CliIO = processIO()): Promise<number> {
  // --verbose anywhere before "--": every client of this run logs at debug level on stderr.
  const end = argv.indexOf("--");
  const isVerbose = (a: string, i: number): boolean => a === "--verbose" && (end < 0 || i < end);
  if (argv.some(isVerbose)) {
    argv = argv.filter((a, i) => !isVerbose(a, i));
    io = { ...io, env: { ...io.env, TINKER_LOG: "debug" } };
  }
  const [command, ...args] = argv;
  const restFactory = (): RestClient => restFromEnv(io.env, io.stderr);
  try {
    switch (command) {
      case undefined:
        io.stderr.write(MAIN_HELP);
        return 2;
      case "--help":
      case "-h":
      case "help":
        io.stdout.write(MAIN_HELP);
        return 0;
      case "--version":
      case "-v":
        io.stdout.write(`tinker-ts ${SDK_VERSION}\n`);
        return 0;
      case "checkpoint":
      case "checkpoints":
        return await runCheckpointCommand(args, io, restFactory);
      case "run":
      case "runs":
        return await runRunCommand(args, io, restFactory);
      case "session":
      case "sessions":
        return await runSessionCommand(args, io, restFactory);
      case "whoami":
        return await runWhoamiCommand(args, io, restFactory);
      case "audit":
        return await runAuditCommand(args, io, restFactory);
      case "sample":
        return await runSampleCommand(args, io);
      case "serve":
        return await serve(args);
      default:
        throw new UsageError(`Unknown command ${JSON.stringify(command)}.`, "tinker-ts --help");
    }
  } catch (err) {
    reportError(err, io);
    return err instanceof UsageError || (err instanceof Error && err.name === "ServeUsageError") ? 2 : 1;
  }
}

/** Delegates to the local server's own command (`src/server/serve.ts`); loaded only for `serve`. */
async function serve(args: string[]): Promise<number> {
  const { runServe } = await import("../server/serve.js");
  // The server keeps running (it installs its own SIGINT/SIGTERM handling); the exit code applies on exit.
  await runServe(args);
  return 0;
}

function reportError(err: unknown, io: CliIO): void {
  const secrets = [io.env["TINKER_API_KEY"]?.trim()];
  const name = err instanceof Error ? err.name : "Error";
  const message = shellMessage(err, io.env);
  const prefix = paint(wantsColor(io.stderr, io.env), "red", "error:");
  // A plain Error (e.g. from the operating system) has no telling class name.
  io.stderr.write(redact(`${prefix} ${name === "Error" ? "" : `${name}: `}${message}\n`, secrets));
  if (err instanceof UsageError && err.usage !== undefined) io.stderr.write(`usage: ${err.usage}\n`);
}

/**
 * The message of `err` written for someone at a shell: flags and environment variables instead of SDK option
 * names, and what to do next.
 *
 * @example
 * ```ts
 * shellMessage(Object.assign(new Error("listen EADDRINUSE"), { code: "EADDRINUSE", port: 8080 }), {});
 * // "Port 8080 is already in use (another \"tinker-ts serve\"?). Stop that process, or ..."
 * ```
 */
export function shellMessage(err: unknown, env: NodeJS.ProcessEnv): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  const port = (err as { port?: unknown }).port;
  if (code === "EADDRINUSE") {
    const p = typeof port === "number" ? port : undefined;
    return (
      `Port ${p ?? "(the one given)"} is already in use (another "tinker-ts serve"?). Stop that process, or start on ` +
      `another port: tinker-ts serve --port ${p === undefined ? 8081 : p + 1} (or --port 0 for any free port).`
    );
  }
  if (code === "EACCES" && typeof port === "number") {
    return `Not allowed to listen on port ${port} (ports below 1024 need privileges). Use another port: tinker-ts serve --port 8080.`;
  }
  if (err instanceof ConfigurationError) {
    if ((env["TINKER_BASE_URL"] ?? "").trim() === "" && (env["TINKER_API_KEY"] ?? "").trim() === "") {
      return (
        "No Tinker server configured: set TINKER_BASE_URL and TINKER_API_KEY. To work offline, run " +
        '"tinker-ts serve" in another terminal and paste the two export lines it prints.'
      );
    }
    if ((env["TINKER_API_KEY"] ?? "").trim() === "") {
      return 'TINKER_API_KEY is not set. Export your API key (the local server prints its key when "tinker-ts serve" starts).';
    }
    return err.message.replace(/\s*\(or pass \{[^}]*\}\)/g, "").replace(/`?npx tinker-ts serve`?/g, '"tinker-ts serve"');
  }
  if (err instanceof DestinationExistsError) {
    return `${err.destination} already exists. Run again with --force to replace it (the old copy stays until the new one is complete), or download into another directory with -o DIR.`;
  }
  if (err instanceof APITimeoutError) return err.message.replace(/,? or raise timeoutMs\.?$/, ".");
  if (err instanceof ProxyError || (err instanceof APIConnectionError && err.message.includes("could not connect to the proxy"))) {
    return err.message.replace(/,? or the `?proxy`? option/g, "");
  }
  if (err instanceof APIConnectionError) {
    const base = env["TINKER_BASE_URL"]?.trim();
    return `${err.message}${base ? ` Is the server at ${base} (TINKER_BASE_URL) running? For the local server, run "tinker-ts serve".` : ""}`;
  }
  return err.message;
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return pathToFileURL(realpathSync(script)).href === import.meta.url;
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  process.exitCode = await main();
}
