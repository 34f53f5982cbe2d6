/**
 * How the CLI looks in a terminal: colour (only on a terminal, never with `NO_COLOR`), the terminal's width (tables
 * are fitted to it, long paths lose their middle), relative times ("3 hours ago", or timestamps with
 * `--absolute`) and tables with right-aligned sizes. Piped output stays plain and complete, for scripts.
 *
 * @module
 */
import { shortTime, type CliIO } from "./util.js";

/** How output is rendered: whether to colour, how wide the terminal is, how to show times. */
export interface Look {
  /** Colour (ANSI SGR) on. */
  color: boolean;
  /** Terminal columns to fit tables into; `undefined` when stdout is not a terminal (nothing is cut). */
  width: number | undefined;
  /** Show times as timestamps instead of "3 hours ago". */
  absolute: boolean;
  /** Reference time for relative times (epoch ms). */
  now: number;
}

/**
 * Whether a stream should get colour: a terminal, `NO_COLOR` unset or empty (https://no-color.org), `TERM` not
 * `dumb`. `FORCE_COLOR` (non-empty, not `0`) turns it on for pipes too.
 *
 * @example
 * ```ts
 * wantsColor(process.stdout, process.env); // true in most terminals, false when piped
 * ```
 */
export function wantsColor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv): boolean {
  const force = env["FORCE_COLOR"];
  if (force !== undefined && force !== "" && force !== "0") return true;
  if (env["NO_COLOR"] !== undefined && env["NO_COLOR"] !== "") return false;
  if (env["TERM"] === "dumb") return false;
  return stream.isTTY === true;
}

/**
 * The {@link Look} of stdout (or of `stream`) for this invocation.
 *
 * @example
 * ```ts
 * const look = lookOf(io, { absolute: false }); // { color: true, width: 120, ... } in a 120-column terminal
 * ```
 */
export function lookOf(
  io: CliIO,
  options: { absolute?: boolean | undefined } = {},
  stream: { isTTY?: boolean; columns?: number } = io.stdout,
): Look {
  const tty = stream.isTTY === true;
  const columns = stream.columns ?? Number(io.env["COLUMNS"] ?? "");
  return {
    color: wantsColor(stream, io.env),
    width: tty ? (Number.isFinite(columns) && columns > 0 ? columns : 80) : undefined,
    absolute: options.absolute === true,
    now: Date.now(),
  };
}

const SGR = { bold: 1, dim: 2, red: 31, green: 32, yellow: 33, blue: 34, magenta: 35, cyan: 36 } as const;
/** A colour or weight {@link paint} can apply. */
export type Paint = keyof typeof SGR;

/**
 * Wraps `text` in an ANSI style when `on`; returns it unchanged otherwise.
 *
 * @example
 * ```ts
 * paint(true, "green", "yes"); // "\x1b[32myes\x1b[39m"
 * ```
 */
export function paint(on: boolean, style: Paint, text: string): string {
  if (!on || text === "") return text;
  const close = style === "bold" || style === "dim" ? 22 : 39;
  return `\x1b[${SGR[style]}m${text}\x1b[${close}m`;
}

/** `text` without ANSI escape sequences. */
export function stripAnsi(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching the ESC (0x1b) that starts an ANSI escape sequence is the point
  return text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "");
}

/**
 * Shortens `text` to `max` characters by replacing its middle with `…`, keeping more of the end (where a
 * checkpoint's name is).
 *
 * @example
 * ```ts
 * truncateMiddle("tinker://run-123456/weights/step-000100", 24); // "tinker://ru…s/step-000100"
 * ```
 */
export function truncateMiddle(text: string, max: number): string {
  if (text.length <= max) return text;
  if (max <= 1) return "…".slice(0, max);
  const keep = max - 1;
  const head = Math.floor(keep * 0.45);
  return `${text.slice(0, head)}…${text.slice(text.length - (keep - head))}`;
}

const UNITS: [string, number][] = [
  ["year", 365 * 86_400_000],
  ["month", 30 * 86_400_000],
  ["week", 7 * 86_400_000],
  ["day", 86_400_000],
  ["hour", 3_600_000],
  ["minute", 60_000],
];

/**
 * A time relative to `now`: "just now", "3 hours ago", "in 6 days".
 *
 * @example
 * ```ts
 * relativeTime(Date.now() - 3 * 3_600_000, Date.now()); // "3 hours ago"
 * ```
 */
export function relativeTime(ms: number, now: number): string {
  const diff = ms - now;
  const abs = Math.abs(diff);
  if (abs < 60_000) return diff <= 0 ? "just now" : "in less than a minute";
  for (const [unit, size] of UNITS) {
    if (abs >= size) {
      const n = Math.floor(abs / size);
      const text = `${n} ${unit}${n === 1 ? "" : "s"}`;
      return diff < 0 ? `${text} ago` : `in ${text}`;
    }
  }
  return "just now";
}

/**
 * A time for a table cell: relative ("3 hours ago"), or the timestamp with `--absolute`; `-` when missing.
 *
 * @example
 * ```ts
 * const look = lookOf(io);
 * when(look, new Date(Date.now() - 2 * 86_400_000).toISOString()); // "2 days ago"
 * ```
 */
export function when(look: Look, iso: string | null | undefined): string {
  if (iso === null || iso === undefined || iso === "") return "-";
  const ms = Date.parse(iso);
  if (look.absolute || !Number.isFinite(ms)) return shortTime(iso);
  return relativeTime(ms, look.now);
}

/**
 * A time for an info field: the timestamp followed by the relative time, or the timestamp alone with
 * `--absolute`.
 */
export function whenLong(look: Look, iso: string | null | undefined): string {
  const abs = shortTime(iso);
  if (look.absolute || abs === "-") return abs;
  return `${abs} (${when(look, iso)})`;
}

/**
 * An expiry: {@link when}, or `never` when there is none; expiries within a day are yellow.
 *
 * @example
 * ```ts
 * expiry(lookOf(io), null); // "never"
 * ```
 */
export function expiry(look: Look, iso: string | null | undefined, long = false): string {
  if (iso === null || iso === undefined || iso === "") return "never";
  const text = long ? whenLong(look, iso) : when(look, iso);
  const ms = Date.parse(iso);
  return Number.isFinite(ms) && ms - look.now < 86_400_000 ? paint(look.color, "yellow", text) : text;
}

/** One column of {@link renderColumns}. */
export interface Column {
  /** Header text (shown in bold on a colour terminal). */
  header: string;
  /** `right` for numbers and sizes. */
  align?: "left" | "right";
  /** May lose its middle (`…`) so the table fits the terminal; at least 16 characters are kept. */
  shrink?: boolean;
  /** Optional style of a cell, by its text. */
  style?: (cell: string) => Paint | undefined;
}

/**
 * Renders a table: two spaces between columns, right-aligned where asked, fitted to `look.width` by
 * shortening the `shrink` columns in the middle, coloured per `style` when `look.color`. Cells may already
 * contain colour; widths ignore it.
 *
 * @example
 * ```ts
 * renderColumns([{ header: "PATH", shrink: true }, { header: "SIZE", align: "right" }], [["tinker://r/weights/a", "1.5 KiB"]], lookOf(io));
 * ```
 */
export function renderColumns(columns: Column[], rows: string[][], look: Pick<Look, "color" | "width">): string {
  const len = (s: string): number => stripAnsi(s).length;
  const widths = columns.map((c, i) => Math.max(c.header.length, ...rows.map((r) => len(r[i] ?? ""))));
  const total = (): number => widths.reduce((a, b) => a + b, 0) + 2 * (columns.length - 1);
  if (look.width !== undefined && total() > look.width) {
    const shrinkable = columns.map((c, i) => (c.shrink === true ? i : -1)).filter((i) => i >= 0);
    for (const i of shrinkable) {
      const excess = total() - look.width;
      if (excess <= 0) break;
      widths[i] = Math.max(16, columns[i]?.header.length ?? 0, (widths[i] ?? 0) - excess);
    }
  }
  const line = (cells: string[], header: boolean): string =>
    cells
      .map((raw, i) => {
        const col = columns[i] as Column;
        const w = widths[i] ?? 0;
        let cell = len(raw) > w ? truncateMiddle(stripAnsi(raw), w) : raw;
        const pad = " ".repeat(Math.max(0, w - len(cell)));
        const last = i === cells.length - 1;
        if (header) cell = paint(look.color, "bold", cell);
        else {
          const style = col.style?.(stripAnsi(raw));
          if (style !== undefined) cell = paint(look.color, style, cell);
        }
        return col.align === "right" ? pad + cell : last ? cell : cell + pad;
      })
      .join("  ")
      .trimEnd();
  return (
    [
      line(
        columns.map((c) => c.header),
        true,
      ),
      ...rows.map((r) => line(r, false)),
    ].join("\n") + "\n"
  );
}

/**
 * The line under a listing: the count and, when `--limit` cut it, how many more there are and how to see them.
 *
 * @example
 * ```ts
 * listingFooter({ shown: 20, total: 32, cut: true, noun: "checkpoint", extra: "1.2 GiB" });
 * // "20 of 32 checkpoints, 1.2 GiB (12 more, use --limit 32 to see them)"
 * ```
 */
export function listingFooter(o: { shown: number; total: number | null; cut: boolean; noun: string; extra?: string }): string {
  const plural = (n: number): string => `${o.noun}${n === 1 ? "" : "s"}`;
  const suffix = o.extra === undefined ? "" : `, ${o.extra}`;
  if (!o.cut) return `${o.shown} ${plural(o.shown)}${suffix}`;
  if (o.total === null || o.total <= o.shown) return `${o.shown} ${plural(o.shown)}${suffix} (there may be more, use a larger --limit)`;
  const more = o.total - o.shown;
  return `${o.shown} of ${o.total} ${plural(o.total)}${suffix} (${more} more, use --limit ${o.total} to see them)`;
}
