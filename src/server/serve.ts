/**
 * `tinker-ts serve`: runs the local Tinker-compatible server until SIGINT/SIGTERM.
 *
 * ```text
 * tinker-ts serve [--port N] [--host H] [--data-dir DIR] [--api-key KEY] [--future-delay-ms MS] [--fault-injection]
 * ```
 *
 * Defaults: port 8080 (0 picks a free port), host 127.0.0.1, data dir `./.tinker/local-server`, API key
 * from `<data-dir>/local-api-key` (created on first start). It prints the base URL and the two `export`
 * lines to paste into a shell; that startup line is the only place the API key is ever printed.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { startLocalServer, type LocalServer } from "./index.js";

/** Usage text of `tinker-ts serve`. */
export const SERVE_USAGE = `Usage: tinker-ts serve [options]

Run a local Tinker-compatible server (state on disk, a tiny real model).

Options:
  --port N              port to listen on (default 8080; 0 picks a free port)
  --host HOST           interface to bind (default 127.0.0.1)
  --data-dir DIR        state directory (default ./.tinker/local-server)
  --api-key KEY         API key to accept (default: stored in DIR/local-api-key)
  --future-delay-ms MS  delay each training operation by MS milliseconds
  --fault-injection     enable POST/DELETE /local/admin/faults (server's own API key only)
  --quiet               do not log requests
  -h, --help            show this help
`;

/** Where `runServe` writes. */
export type ServeIO = {
  /** Normal output (default: process.stdout). */
  stdout?: (text: string) => void;
  /** Diagnostics (default: process.stderr). */
  stderr?: (text: string) => void;
  /** Install SIGINT/SIGTERM handlers that close the server and exit (default true). */
  handleSignals?: boolean;
};

/** Thrown by {@link runServe} for invalid command-line arguments. */
export class ServeUsageError extends Error {
  /** Creates the error; the message explains the problem. */
  constructor(message: string) {
    super(message);
    this.name = "ServeUsageError";
  }
}

function intOption(name: string, raw: string | undefined, min: number, max: number): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new ServeUsageError(`--${name} must be an integer between ${min} and ${max}, got ${JSON.stringify(raw)}`);
  }
  return Number(raw);
}

/**
 * Parses `argv` (the arguments after `serve`), starts the server and prints how to use it. Resolves to
 * the running server, or `undefined` after printing `--help`.
 *
 * @throws {ServeUsageError} on invalid arguments.
 * @example
 * ```ts
 * const server = await runServe(["--port", "0", "--data-dir", "/tmp/tinker"], { handleSignals: false });
 * await server?.close();
 * ```
 */
export async function runServe(argv: string[], io: ServeIO = {}): Promise<LocalServer | undefined> {
  const out = io.stdout ?? ((t: string) => void process.stdout.write(t));
  const err = io.stderr ?? ((t: string) => void process.stderr.write(t));
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        port: { type: "string" },
        host: { type: "string" },
        "data-dir": { type: "string" },
        "api-key": { type: "string" },
        "future-delay-ms": { type: "string" },
        "fault-injection": { type: "boolean" },
        quiet: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw new ServeUsageError(`${(e as Error).message}\n\n${SERVE_USAGE}`);
  }
  if (values.help === true) {
    out(SERVE_USAGE);
    return undefined;
  }
  const port = intOption("port", values.port as string | undefined, 0, 65535) ?? 8080;
  const futureDelayMs = intOption("future-delay-ms", values["future-delay-ms"] as string | undefined, 0, 3_600_000);
  const apiKey = values["api-key"] as string | undefined;
  if (apiKey === "") throw new ServeUsageError("--api-key must not be empty");
  const dataDir = (values["data-dir"] as string | undefined) ?? ".tinker/local-server";
  const quiet = values.quiet === true;

  const server = await startLocalServer({
    port,
    host: (values.host as string | undefined) ?? "127.0.0.1",
    dataDir,
    ...(apiKey !== undefined ? { apiKey } : {}),
    ...(futureDelayMs !== undefined ? { futureDelayMs } : {}),
    faultInjection: values["fault-injection"] === true,
    log: quiet ? undefined : (line) => err(`[tinker-ts serve] ${line}\n`),
  });
  out(
    `tinker-ts local server listening on ${server.baseUrl}\n` +
      `data dir: ${server.dataDir}\n` +
      `Use it from a shell with:\n` +
      `export TINKER_BASE_URL=${server.baseUrl}\n` +
      `export TINKER_API_KEY=${server.apiKey}\n`,
  );

  if (io.handleSignals ?? true) {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (stopping) {
        process.exit(130);
      }
      stopping = true;
      err(`[tinker-ts serve] ${signal}: shutting down\n`);
      server.close().then(
        () => {
          process.off("SIGINT", onSignal);
          process.off("SIGTERM", onSignal);
          process.exit(0);
        },
        (e: unknown) => {
          err(`[tinker-ts serve] shutdown failed: ${(e as Error).message}\n`);
          process.exit(1);
        },
      );
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  }
  return server;
}
