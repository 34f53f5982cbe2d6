/**
 * Progress on stderr: the lazy listing's page counter and the download bar (speed and ETA, a done line at the
 * end). On a terminal they redraw one line in place; otherwise they print a few plain lines a log can keep.
 *
 * @module
 */
import type { DownloadProgress } from "../download/download.js";
import { paint, truncateMiddle, wantsColor } from "./term.js";
import { formatBytes, formatDuration, type CliIO } from "./util.js";

/**
 * Progress of a lazy listing on stderr: in place on a terminal, one line per page otherwise; only when paging.
 *
 * @example
 * ```ts
 * const progress = pageProgress(io, "checkpoints", undefined);
 * for await (const c of rest.iterUserCheckpoints({ onPage: progress.onPage })) void c;
 * progress.finish();
 * ```
 */
export function pageProgress(io: CliIO, what: string, limit: number | undefined) {
  let shown = false;
  let totalCount: number | null = null;
  return {
    onPage: (p: { fetched: number; totalCount: number | null; offset: number }) => {
      totalCount = p.totalCount;
      const total = p.totalCount === null ? undefined : limit === undefined ? p.totalCount : Math.min(limit, p.totalCount);
      if (p.offset === 0 && (total === undefined || p.fetched >= total)) return; // one page: nothing to show
      const text = `Listed ${Math.min(p.fetched, total ?? p.fetched)}${total === undefined ? "" : ` of ${total}`} ${what}…`;
      if (io.stderr.isTTY === true) io.stderr.write(`\r${text}\x1b[K`);
      else io.stderr.write(`${text}\n`);
      shown = true;
    },
    /** The total the server reported with the last page (`null` when it does not say). */
    totalCount: (): number | null => totalCount,
    finish: () => {
      if (shown && io.stderr.isTTY === true) io.stderr.write("\r\x1b[K");
      shown = false;
    },
  };
}

/** Seconds as `4s`, `1m20s`, `2h5m`; `--` when unknown. */
function eta(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds) || seconds < 0) return "--";
  return formatDuration(Math.max(1, Math.round(seconds)));
}

/** Elapsed seconds as `0.4s`, `5.3s`, `1m20s`. */
function elapsed(ms: number): string {
  return ms < 60_000 ? `${(ms / 1000).toFixed(1)}s` : formatDuration(Math.round(ms / 1000));
}

/** How often the terminal line is redrawn at most (ms). */
const REDRAW_MS = 100;
/** The window the speed is measured over (ms). */
const SPEED_WINDOW_MS = 3000;

/**
 * Download progress on stderr. On a terminal: one redrawn line, `Downloading ███░░░ 52%  14.0 MiB / 27.0 MiB
 * 5.2 MiB/s  ETA 3s`, fitted to the width. Otherwise: a line at the start, at 25/50/75/100 % and at
 * extraction. Both end with a done line: `Downloaded PATH: 27.0 MiB in 5.3s (5.1 MiB/s)`.
 *
 * @example
 * ```ts
 * const progress = downloadProgress(io, "tinker://run-1/weights/step-100");
 * await downloadCheckpoint(rest, "tinker://run-1/weights/step-100", { onProgress: progress.onProgress });
 * progress.finish();
 * ```
 */
export function downloadProgress(io: CliIO, tinkerPath: string, clock: () => number = () => performance.now()) {
  const tty = io.stderr.isTTY === true;
  const color = wantsColor(io.stderr, io.env);
  const started = clock();
  const samples: { t: number; bytes: number }[] = [];
  let lastDraw = -Infinity;
  let lastPhase = "";
  let lastQuarter = 0;
  let drawn = false;
  let downloaded = 0;

  const speed = (): number | null => {
    const first = samples[0];
    const last = samples.at(-1);
    if (first === undefined || last === undefined || last.t - first.t < 200) return null;
    return ((last.bytes - first.bytes) / (last.t - first.t)) * 1000;
  };
  const sizeText = (p: DownloadProgress): string =>
    p.totalBytes === null ? formatBytes(p.bytes) : `${formatBytes(p.bytes)} / ${formatBytes(p.totalBytes)}`;

  const drawLine = (p: DownloadProgress): void => {
    const width = Math.max(40, (io.stderr.columns ?? 80) - 1);
    const fraction = p.totalBytes !== null && p.totalBytes > 0 ? Math.min(1, p.bytes / p.totalBytes) : null;
    const s = speed();
    const label = p.phase === "download" ? "Downloading" : "Extracting ";
    const tail =
      p.phase === "download"
        ? `  ${sizeText(p)}  ${s === null ? "" : `${formatBytes(s)}/s`}  ETA ${eta(fraction === null || s === null || s === 0 ? null : ((p.totalBytes ?? 0) - p.bytes) / s)}`
        : `  ${sizeText(p)}`;
    const pct = fraction === null ? "" : ` ${String(Math.floor(fraction * 100)).padStart(3)}%`;
    const barWidth = Math.max(10, Math.min(30, width - label.length - pct.length - tail.length - 2));
    const filled = fraction === null ? 0 : Math.round(fraction * barWidth);
    const bar =
      fraction === null ? "" : ` ${paint(color, "cyan", "█".repeat(filled))}${paint(color, "dim", "░".repeat(barWidth - filled))}`;
    const plainLength = label.length + (fraction === null ? 0 : barWidth + 1) + pct.length + tail.length;
    const line = plainLength > width ? `${label}${pct}${tail}`.slice(0, width) : `${label}${bar}${pct}${tail}`;
    io.stderr.write(`\r${line}\x1b[K`);
    drawn = true;
  };

  const doneLine = (bytes: number): string => {
    const ms = clock() - started;
    const rate = ms > 0 ? ` (${formatBytes((bytes / ms) * 1000)}/s)` : "";
    const mark = tty ? `${paint(color, "green", "✓")} ` : "";
    const width = Math.max(40, (io.stderr.columns ?? 80) - 1);
    const rest = `: ${formatBytes(bytes)} in ${elapsed(ms)}${rate}`;
    const path = tty ? truncateMiddle(tinkerPath, Math.max(16, width - rest.length - 13)) : tinkerPath;
    return `${mark}Downloaded ${path}${rest}\n`;
  };

  return {
    onProgress: (p: DownloadProgress): void => {
      const now = clock();
      if (p.phase === "download") {
        downloaded = p.bytes;
        samples.push({ t: now, bytes: p.bytes });
        while (samples.length > 2 && (samples[0] as { t: number }).t < now - SPEED_WINDOW_MS) samples.shift();
      }
      if (p.phase === "done") {
        if (tty && drawn) io.stderr.write("\r\x1b[K");
        drawn = false;
        io.stderr.write(doneLine(p.bytes || downloaded));
        lastPhase = "done";
        return;
      }
      if (tty) {
        if (p.phase !== lastPhase || now - lastDraw >= REDRAW_MS || p.bytes === p.totalBytes) {
          lastDraw = now;
          lastPhase = p.phase;
          drawLine(p);
        }
        return;
      }
      if (p.phase !== lastPhase) {
        lastPhase = p.phase;
        if (p.phase === "download")
          io.stderr.write(`Downloading ${tinkerPath}${p.totalBytes === null ? "" : ` (${formatBytes(p.totalBytes)})`}\n`);
        else io.stderr.write(`Extracting the last files\n`);
      }
      if (p.phase === "download" && p.totalBytes !== null && p.totalBytes > 0) {
        const quarter = Math.floor(Math.min(1, p.bytes / p.totalBytes) * 4);
        if (quarter > lastQuarter) {
          lastQuarter = quarter;
          io.stderr.write(`  ${quarter * 25}% (${sizeText(p)})\n`);
        }
      }
    },
    /** Ends the redrawn line (after success or failure). */
    finish: (): void => {
      if (tty && drawn) io.stderr.write("\n");
      drawn = false;
    },
  };
}
