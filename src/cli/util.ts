/**
 * CLI plumbing: the I/O the commands write to, usage errors, option parsing helpers, human durations and
 * times, byte sizes and `key: value` fields (tables and terminal rendering: `term.ts`).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { TinkerError } from "../core/errors.js";
import type { Logger, LogLevel } from "../core/logging.js";
import { Log, stderrLogger } from "../internal/log.js";

/** Where a command reads and writes; `process` streams by default, replaceable in tests. */
export interface CliIO {
  /** Results (tables, JSON, paths). */
  stdout: { write(chunk: string): unknown; isTTY?: boolean; columns?: number };
  /** Progress, prompts and errors. */
  stderr: { write(chunk: string): unknown; isTTY?: boolean; columns?: number };
  /** Answers to confirmation prompts. */
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  /** Environment (TINKER_BASE_URL, TINKER_API_KEY). */
  env: NodeJS.ProcessEnv;
}

/**
 * The logging options of the CLI's clients: lines on the CLI's stderr (`[tinker-ts] debug: ...`), at the level of
 * `TINKER_LOG` (which `--verbose` sets to `debug`); an invalid `TINKER_LOG` warns once and falls back to `warn`.
 *
 * @example
 * ```ts
 * const service = new ServiceClient({ ...cliLogOptions(io) });
 * ```
 */
export function cliLogOptions(io: Pick<CliIO, "env" | "stderr">): { logger: Logger; logLevel: LogLevel } {
  const logger = stderrLogger((text) => io.stderr.write(text));
  return { logger, logLevel: new Log({ logger, env: io.env }).level };
}

/**
 * A command line that cannot be run as given (unknown option, missing argument, bad value). Exit code 2.
 *
 * @example
 * ```ts
 * throw new UsageError("checkpoint info needs a PATH", "tinker-ts checkpoint info PATH");
 * ```
 */
export class UsageError extends TinkerError {
  override name: string = "UsageError";
  /** The usage line of the command, printed after the message. */
  readonly usage: string | undefined;

  /** Builds the error; `usage` is shown after the message. */
  constructor(message: string, usage?: string) {
    super(message);
    this.usage = usage;
  }
}

/** Output formats of listing and info commands. */
export type OutputFormat = "table" | "json";

/** One option of a command: a string (`--x V`) or a boolean flag, with an optional one-letter alias. */
export interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
}

/** The values `util.parseArgs` gives for `O`: strings for string options, booleans for flags. */
export type OptionValues<O extends Record<string, OptionSpec>> = {
  [K in keyof O]?: O[K]["type"] extends "boolean" ? boolean : string;
};

/** The `--format` and `--help` options every command takes. */
export const COMMON_OPTIONS = {
  format: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const satisfies Record<string, OptionSpec>;

/**
 * `util.parseArgs` in strict mode, with parse failures turned into {@link UsageError}s carrying `usage`.
 *
 * @throws {UsageError} for unknown options, missing option values and the like.
 * @example
 * ```ts
 * const { values, positionals } = parseCommand(process.argv.slice(4), { limit: { type: "string" } }, "tinker-ts run list [--limit N]");
 * ```
 */
export function parseCommand<O extends Record<string, OptionSpec>>(
  args: string[],
  options: O,
  usage: string,
): { values: OptionValues<O & typeof COMMON_OPTIONS>; positionals: string[] } {
  try {
    const parsed = parseArgs({ args, options: { ...COMMON_OPTIONS, ...options }, allowPositionals: true, strict: true });
    return { values: parsed.values as OptionValues<O & typeof COMMON_OPTIONS>, positionals: parsed.positionals };
  } catch (err) {
    const message = err instanceof Error ? err.message.replace(/\s*To specify a positional argument.*$/s, "") : String(err);
    throw new UsageError(message, usage);
  }
}

/**
 * Reads `--format`: `table` (default) or `json`.
 *
 * @throws {UsageError} for any other value.
 */
export function outputFormat(value: unknown, usage: string): OutputFormat {
  if (value === undefined || value === "table") return "table";
  if (value === "json") return "json";
  throw new UsageError(`--format must be "table" or "json", got ${JSON.stringify(value)}.`, usage);
}

/**
 * Reads a positive whole number option such as `--limit`.
 *
 * @throws {UsageError} when the value is not a whole number ≥ 1.
 */
export function positiveInt(value: unknown, flag: string, usage: string): number | undefined {
  if (value === undefined) return undefined;
  const s = String(value);
  if (!/^\d+$/.test(s) || Number(s) < 1 || !Number.isSafeInteger(Number(s))) {
    throw new UsageError(`${flag} must be a whole number ≥ 1, got ${JSON.stringify(s)}.`, usage);
  }
  return Number(s);
}

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

/**
 * Parses a human duration into seconds: a plain number of seconds (`3600`) or number+unit groups with units
 * s, m, h, d, w (`7d`, `12h`, `1d12h`, `90m`). Returns `undefined` when `text` is not a duration.
 *
 * @example
 * ```ts
 * parseDuration("7d");    // 604800
 * parseDuration("1h30m"); // 5400
 * parseDuration("3600");  // 3600
 * ```
 */
export function parseDuration(text: string): number | undefined {
  const s = text.trim().toLowerCase();
  if (/^\d+$/.test(s)) return Number(s);
  if (!/^(\d+(\.\d+)?[smhdw])+$/.test(s)) return undefined;
  let total = 0;
  for (const m of s.matchAll(/(\d+(?:\.\d+)?)([smhdw])/g)) total += Number(m[1]) * (UNIT_SECONDS[m[2] ?? "s"] ?? 1);
  return total;
}

/**
 * Formats seconds as the largest exact unit combination, e.g. `604800` → `7d`, `5400` → `1h30m`.
 *
 * @example
 * ```ts
 * formatDuration(90_000); // "1d1h"
 * ```
 */
export function formatDuration(seconds: number): string {
  let rest = Math.round(seconds);
  if (rest === 0) return "0s";
  const parts: string[] = [];
  for (const [unit, size] of [
    ["w", 604_800],
    ["d", 86_400],
    ["h", 3600],
    ["m", 60],
    ["s", 1],
  ] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  return parts.join("");
}

/**
 * Parses a time filter: an ISO date or date-time (`2025-01-31`, `2025-01-31T12:00:00Z`), or a duration
 * meaning "that long ago" (`7d` = 7 days before `now`). Returns epoch milliseconds.
 *
 * @throws {UsageError} when `text` is neither.
 * @example
 * ```ts
 * parseTimeFilter("7d", "--before", "tinker-ts checkpoint delete …", Date.now()); // 7 days ago, in epoch ms
 * ```
 */
export function parseTimeFilter(text: string, flag: string, usage: string, now: number = Date.now()): number {
  const seconds = parseDuration(text);
  if (seconds !== undefined && !/^\d+$/.test(text.trim())) return now - seconds * 1000;
  if (/^\d{4}-\d{2}-\d{2}/.test(text.trim())) {
    const ms = Date.parse(text.trim());
    if (Number.isFinite(ms)) return ms;
  }
  throw new UsageError(
    `${flag} must be an ISO date/time (2025-01-31, 2025-01-31T12:00:00Z) or an age such as 7d, 12h, 2w; got ${JSON.stringify(text)}.`,
    usage,
  );
}

/**
 * Formats a byte count with binary units (`1.5 MiB`); `null`/`undefined` as `-`.
 *
 * @example
 * ```ts
 * formatBytes(1536); // "1.5 KiB"
 * ```
 */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined) return "-";
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = bytes / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

/**
 * Renders `key: value` lines with aligned values.
 *
 * @example
 * ```ts
 * renderFields([["Base model", "Qwen/Qwen3-8B"]]); // "Base model: Qwen/Qwen3-8B\n"
 * ```
 */
export function renderFields(fields: [string, string][]): string {
  const width = Math.max(...fields.map(([k]) => k.length));
  return fields.map(([k, v]) => `${`${k}:`.padEnd(width + 1)} ${v}`).join("\n") + "\n";
}

/** Writes `value` as pretty JSON followed by a newline. */
export function writeJson(io: CliIO, value: unknown): void {
  io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Shows an ISO timestamp as `YYYY-MM-DD HH:MM:SSZ`, or `-`. */
export function shortTime(iso: string | null | undefined): string {
  if (iso === null || iso === undefined || iso === "") return "-";
  const ms = Date.parse(iso);
  if (!Number.isFinite(ms)) return iso;
  return new Date(ms)
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d{3}Z$/, "Z");
}

/** How a command group (`checkpoint`, `run`) routes its subcommands. */
export interface CommandGroup {
  /** The group's name, e.g. `"checkpoint"`. */
  name: string;
  /** The group's help, printed for `--help` (exit 0) or a missing subcommand (exit 2). */
  help: string;
  /** Each subcommand's help, printed when `--help`/`-h` follows it. */
  subHelp: Record<string, string | undefined>;
  /** The subcommands. */
  commands: Record<string, (args: string[]) => Promise<number>>;
}

/**
 * Routes `tinker-ts <group> <sub> …` to its subcommand, handling the group's and the subcommands' `--help`.
 *
 * @throws {UsageError} for an unknown subcommand.
 * @example
 * ```ts
 * const code = await dispatch(["list", "--limit", "5"], io, {
 *   name: "run",
 *   help: "Usage: tinker-ts run (list|info) …",
 *   subHelp: { list: "Usage: tinker-ts run list [--limit N]" },
 *   commands: { list: async (args) => (args.length <= 2 ? 0 : 2) },
 * });
 * ```
 */
export async function dispatch(args: string[], io: CliIO, group: CommandGroup): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
    io.stdout.write(group.help);
    return sub === undefined ? 2 : 0;
  }
  const help = group.subHelp[sub];
  if ((rest.includes("--help") || rest.includes("-h")) && help !== undefined) {
    io.stdout.write(help);
    return 0;
  }
  const command = group.commands[sub];
  if (command === undefined) {
    throw new UsageError(
      `Unknown command "${group.name} ${sub}".`,
      `tinker-ts ${group.name} <${Object.keys(group.commands).join("|")}> --help`,
    );
  }
  return command(rest);
}
