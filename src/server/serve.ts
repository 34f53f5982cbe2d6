/**
 * `tinker-ts serve`: runs the local Tinker-compatible server until SIGINT/SIGTERM.
 *
 * ```text
 * tinker-ts serve [--port N] [--host H] [--data-dir DIR] [--api-key KEY] [--future-delay-ms MS] [--fault-injection]
 *                 [--client-config JSON]
 * ```
 *
 * Defaults: port 8080 (0 picks a free port), host 127.0.0.1, data dir `./.tinker/local-server`, API key
 * from `<data-dir>/local-api-key` (created on first start). It prints the base URL and the two `export`
 * lines to paste into a shell; that startup line is the only place the API key is ever printed.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { startLocalServer, type ClientConfig, type LocalServer } from "./index.js";

/** Usage text of `tinker-ts serve`. */
export const SERVE_USAGE = `Usage: tinker-ts serve [options]

Run a local Tinker-compatible server (state on disk, a tiny real model).

Options:
  --port N              port to listen on (default 8080; 0 picks a free port)
  --host HOST           interface to bind (default 127.0.0.1)
  --data-dir DIR        state directory (default ./.tinker/local-server)
  --api-key KEY         API key to accept (default: stored in DIR/local-api-key)
  --future-delay-ms MS  delay each training operation by MS milliseconds
  --client-config JSON  override fields of /api/v1/client/config, e.g.
                        '{"proto_compress_fwdbwd": true, "fwdbwd_max_chunk_len": 8}'
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

const CLIENT_CONFIG_TYPES: Record<keyof ClientConfig, "boolean" | "integer" | "number" | "string"> = {
  pjwt_auth_enabled: "boolean",
  credential_default_source: "string",
  sample_dispatch_bytes_semaphore_size: "integer",
  inflight_response_bytes_semaphore_size: "integer",
  parallel_fwdbwd_chunks: "boolean",
  proto_compress_fwdbwd: "boolean",
  fwdbwd_max_chunk_len: "integer",
  fwdbwd_max_chunk_bytes_count: "integer",
  fwdbwd_dispatch_bytes_semaphore_size: "integer",
  billing_exception_max_pause_duration_sec: "number",
  sample_no_retries: "boolean",
  sample_enable_stuck_detection: "boolean",
  sample_max_concurrent_requests: "integer",
  use_pyqwest_transport: "boolean",
  create_model_via_load_weights: "boolean",
};

/** Parses `--client-config` (a JSON object of ClientConfigResponse fields); unknown keys and wrong types are usage errors. */
function parseClientConfig(raw: string | undefined): Partial<ClientConfig> | undefined {
  if (raw === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (e) {
    throw new ServeUsageError(`--client-config must be a JSON object, e.g. '{"proto_compress_fwdbwd": true}' (${(e as Error).message})`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new ServeUsageError(`--client-config must be a JSON object, e.g. '{"proto_compress_fwdbwd": true}'`);
  }
  for (const [key, value] of Object.entries(parsed)) {
    const type = CLIENT_CONFIG_TYPES[key as keyof ClientConfig];
    if (type === undefined) {
      throw new ServeUsageError(
        `--client-config: unknown field ${JSON.stringify(key)}; known: ${Object.keys(CLIENT_CONFIG_TYPES).join(", ")}`,
      );
    }
    const ok =
      type === "integer"
        ? Number.isSafeInteger(value)
        : type === "number"
          ? typeof value === "number" && Number.isFinite(value)
          : typeof value === type;
    if (!ok)
      throw new ServeUsageError(
        `--client-config: ${key} must be ${type === "integer" ? "an integer" : `a ${type}`}, got ${JSON.stringify(value)}`,
      );
  }
  return parsed as Partial<ClientConfig>;
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
        "client-config": { type: "string" },
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
  const clientConfig = parseClientConfig(values["client-config"] as string | undefined);

  const server = await startLocalServer({
    port,
    host: (values.host as string | undefined) ?? "127.0.0.1",
    dataDir,
    ...(apiKey !== undefined ? { apiKey } : {}),
    ...(futureDelayMs !== undefined ? { futureDelayMs } : {}),
    ...(clientConfig !== undefined ? { clientConfig } : {}),
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
