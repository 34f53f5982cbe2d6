/**
 * `tinker-ts whoami`, `tinker-ts session list|info` and `tinker-ts audit [--day D]`.
 *
 * @module
 */
import type { RestFactory } from "./checkpoint.js";
import { renderColumns } from "./term.js";
import { UsageError, dispatch, outputFormat, parseCommand, positiveInt, renderFields, shortTime, writeJson, type CliIO } from "./util.js";

/** A plain table (no colour, nothing cut), like every listing when stdout is not a terminal. */
function renderTable(headers: string[], rows: string[][]): string {
  return renderColumns(
    headers.map((header) => ({ header })),
    rows,
    { color: false, width: undefined },
  );
}

const USAGE = {
  whoami: "tinker-ts whoami [--format table|json]",
  list: "tinker-ts session list [--limit N] [--format table|json]",
  info: "tinker-ts session info SESSION_ID [--format table|json]",
  audit: "tinker-ts audit [--day YYYY-MM-DD] [--checkpoints] [--format table|json]",
} as const;

/** Help of the `session` group. */
export const SESSION_HELP = `Usage: tinker-ts session <command> [options]

Inspect your sessions (one per ServiceClient that trained or sampled).

Commands:
  list   List your session ids, newest first
  info   Show a session's training runs and samplers

Run "tinker-ts session <command> --help" for a command's options.
`;

const SESSION_SUB_HELP: Record<string, string> = {
  list: `Usage: ${USAGE.list}

List your session ids, newest first.

Options:
  --limit N         Show at most N sessions (default 20)
  --format FORMAT   table (default) or json
  -h, --help        Show this help
`,
  info: `Usage: ${USAGE.info}

Show the training runs and samplers of a session.

Options:
  --format FORMAT   table (default) or json (as sent by the server)
  -h, --help        Show this help
`,
};

/** Help of `tinker-ts whoami`. */
export const WHOAMI_HELP = `Usage: ${USAGE.whoami}

Show who the credential in use belongs to (decoded from the JWT the client holds; no request once it is held).
Needs a service in JWT mode or a JWT API key.
`;

/** Help of `tinker-ts audit`. */
export const AUDIT_HELP = `Usage: ${USAGE.audit}

Show the audit log of one UTC day (default today), oldest first. Admin only on the service.

Options:
  --day DAY         The UTC day, YYYY-MM-DD
  --checkpoints     Only checkpoint events
  --format FORMAT   table (default) or json (as sent by the server)
  -h, --help        Show this help
`;

/**
 * Runs `tinker-ts whoami`. Returns the exit code.
 *
 * @example
 * ```ts
 * const code = await runWhoamiCommand([], io, () => rest);
 * ```
 */
export async function runWhoamiCommand(args: string[], io: CliIO, restFactory: RestFactory): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    io.stdout.write(WHOAMI_HELP);
    return 0;
  }
  const { values, positionals } = parseCommand(args, {}, USAGE.whoami);
  if (positionals.length > 0) throw new UsageError(`Unexpected argument ${JSON.stringify(positionals[0])}.`, USAGE.whoami);
  const format = outputFormat(values.format, USAGE.whoami);
  const me = await restFactory().whoami();
  if (format === "json") writeJson(io, me);
  else
    io.stdout.write(
      renderFields([
        ["User", me.user_urn],
        ["Email", me.email ?? "-"],
      ]),
    );
  return 0;
}

/**
 * Runs `tinker-ts session <sub> …`. Returns the exit code.
 *
 * @example
 * ```ts
 * const code = await runSessionCommand(["list", "--limit", "5"], io, () => rest);
 * ```
 */
export async function runSessionCommand(args: string[], io: CliIO, restFactory: RestFactory): Promise<number> {
  return dispatch(args, io, {
    name: "session",
    help: SESSION_HELP,
    subHelp: SESSION_SUB_HELP,
    commands: {
      list: async (a) => {
        const { values, positionals } = parseCommand(a, { limit: { type: "string" } }, USAGE.list);
        if (positionals.length > 0) throw new UsageError(`Unexpected argument ${JSON.stringify(positionals[0])}.`, USAGE.list);
        const format = outputFormat(values.format, USAGE.list);
        const limit = positiveInt(values.limit, "--limit", USAGE.list) ?? 20;
        const { sessions } = await restFactory().listSessions({ limit: Math.min(limit, 1000) });
        if (format === "json") writeJson(io, sessions);
        else
          io.stdout.write(
            sessions.length === 0
              ? "No sessions.\n"
              : `${renderTable(
                  ["SESSION ID"],
                  sessions.map((s) => [s]),
                )}${sessions.length} session${sessions.length === 1 ? "" : "s"}\n`,
          );
        return 0;
      },
      info: async (a) => {
        const { values, positionals } = parseCommand(a, {}, USAGE.info);
        const format = outputFormat(values.format, USAGE.info);
        if (positionals.length !== 1) {
          throw new UsageError(
            positionals.length === 0 ? "Missing SESSION_ID." : `Expected one SESSION_ID, got ${positionals.length}.`,
            USAGE.info,
          );
        }
        const session = await restFactory().getSession(positionals[0] as string);
        if (format === "json") writeJson(io, session);
        else {
          io.stdout.write(
            renderFields([
              ["Session", positionals[0] as string],
              ["Training runs", session.training_run_ids.length === 0 ? "-" : session.training_run_ids.join(", ")],
              ["Samplers", session.sampler_ids.length === 0 ? "-" : session.sampler_ids.join(", ")],
            ]),
          );
        }
        return 0;
      },
    },
  });
}

/**
 * Runs `tinker-ts audit …`. Returns the exit code.
 *
 * @example
 * ```ts
 * const code = await runAuditCommand(["--day", "2026-01-15"], io, () => rest);
 * ```
 */
export async function runAuditCommand(args: string[], io: CliIO, restFactory: RestFactory): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    io.stdout.write(AUDIT_HELP);
    return 0;
  }
  const { values, positionals } = parseCommand(args, { day: { type: "string" }, checkpoints: { type: "boolean" } }, USAGE.audit);
  if (positionals.length > 0) throw new UsageError(`Unexpected argument ${JSON.stringify(positionals[0])}.`, USAGE.audit);
  const format = outputFormat(values.format, USAGE.audit);
  const day = values.day as string | undefined;
  if (day !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(day))
    throw new UsageError(`--day must be YYYY-MM-DD, got ${JSON.stringify(day)}.`, USAGE.audit);
  const { entries } = await restFactory().getAuditLog({
    ...(day === undefined ? {} : { day }),
    ...(values.checkpoints === true ? { eventType: "checkpoints" as const } : {}),
  });
  if (format === "json") {
    writeJson(io, entries);
    return 0;
  }
  if (entries.length === 0) {
    io.stdout.write(`No audit events${day === undefined ? " today" : ` on ${day}`}.\n`);
    return 0;
  }
  io.stdout.write(
    renderTable(
      ["TIME", "EVENT", "TINKER PATH", "MODEL"],
      entries.map((e) => [shortTime(e.timestamp), e.event, e.tinker_path ?? "-", e.model_id ?? "-"]),
    ),
  );
  return 0;
}
