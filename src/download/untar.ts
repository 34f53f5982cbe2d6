/**
 * A streaming tar extractor with fixed memory, for checkpoint downloads.
 *
 * Archive bytes are fed in order, in pieces of any size, as they arrive from the network. File contents are
 * copied into a small ring of reusable buffers and written to disk by a serial queue of asynchronous writes;
 * when the ring is full, {@link StreamingUntar.write} returns a promise and the caller pauses its source.
 * Memory use is the ring (4 MiB) whatever the archive size, and nothing is allocated per piece.
 *
 * It extracts regular files and directories only, below its root, and refuses everything else with
 * {@link UnsafeArchiveError}: absolute paths, `..` segments, hard and symbolic links, devices, FIFOs and entry
 * types it does not know. It reads ustar and GNU headers, pax extended headers (`path`, `size`) and GNU long
 * names, checks every header checksum, and drops special permission bits (setuid, setgid, sticky).
 *
 * @module
 */
import type { FileHandle } from "node:fs/promises";
import { mkdir, open } from "node:fs/promises";
import path from "node:path";
import { TinkerError } from "../core/errors.js";
import { UnsafeArchiveError, ArchiveExtractionError } from "./errors.js";

const BLOCK = 512;
/** Size and number of the reusable write buffers. */
const SLOT_BYTES = 1 << 20;
const SLOTS = 4;
/** Largest pax or GNU long-name header accepted. */
const MAX_META_BYTES = 1 << 20;

const LINK_TYPES: Record<string, string> = { "1": "hard link", "2": "symbolic link" };
const OTHER_TYPES: Record<string, string> = {
  "3": "it is a device file",
  "4": "it is a device file",
  "6": "it is a FIFO",
};
const TYPE_NAMES: Record<string, string> = {
  D: "GNU dump directory",
  M: "GNU multi-volume continuation",
  N: "GNU old long name",
  S: "GNU sparse file",
  V: "volume label",
};

interface FileEntry {
  kind: "file";
  abs: string;
  mode: number;
  mtime: number | undefined;
  fh: FileHandle | undefined;
  written: number;
}

/** The entry whose data is being read. */
type Current = FileEntry | { kind: "meta"; type: string; parts: Buffer[]; bytes: number } | { kind: "skip" };

/**
 * Extracts a tar stream into `root` (which must exist and be empty).
 *
 * @example
 * ```ts
 * const untar = new StreamingUntar("/tmp/extract", "tinker://run-1/weights/0001");
 * for await (const piece of source) await untar.write(piece);
 * await untar.finish();
 * ```
 */
export class StreamingUntar {
  /** Archive bytes consumed so far. */
  bytes = 0;
  readonly #root: string;
  readonly #tinkerPath: string;
  readonly #header = Buffer.alloc(BLOCK);
  #headerFill = 0;
  #phase: "header" | "data" | "pad" | "end" = "header";
  #remaining = 0;
  #pad = 0;
  #current: Current = { kind: "skip" };
  #paxPath: string | undefined;
  #paxSize: number | undefined;
  #longName: string | undefined;
  readonly #slots: Buffer[] = [];
  readonly #fill: number[] = [];
  readonly #flushed: number[] = [];
  readonly #inflight: number[] = [];
  #slot = 0;
  #slotWaiter: { index: number; resolve: () => void } | undefined;
  #chain: Promise<void> = Promise.resolve();
  #failure: TinkerError | undefined;
  #aborted = false;
  readonly #dirs = new Set<string>();

  constructor(root: string, tinkerPath: string) {
    this.#root = path.resolve(root);
    this.#tinkerPath = tinkerPath;
    this.#dirs.add(this.#root);
    for (let i = 0; i < SLOTS; i++) {
      this.#slots.push(Buffer.allocUnsafeSlow(SLOT_BYTES));
      this.#fill.push(0);
      this.#flushed.push(0);
      this.#inflight.push(0);
    }
  }

  /**
   * Consumes `piece`. Returns nothing when it was consumed at once, or a promise when the write buffers were
   * full: `piece` must stay unchanged until that settles.
   *
   * @throws {UnsafeArchiveError} for an entry that may not be extracted.
   * @throws {ArchiveExtractionError} for a corrupt archive or a failed disk write.
   */
  write(piece: Buffer): void | Promise<void> {
    this.#throwIfFailed();
    let offset = this.#run(piece, 0);
    if (offset >= piece.length) {
      this.bytes += piece.length;
      return;
    }
    return (async () => {
      while (offset < piece.length) {
        await this.#slotFree();
        this.#throwIfFailed();
        offset = this.#run(piece, offset);
      }
      this.bytes += piece.length;
    })();
  }

  /**
   * Ends the archive: checks it did not stop inside an entry and waits until every file is written and closed.
   *
   * @throws {ArchiveExtractionError} when the archive is truncated or a write failed.
   */
  async finish(): Promise<void> {
    this.#throwIfFailed();
    const atBoundary = this.#phase === "end" || (this.#phase === "header" && this.#headerFill === 0);
    if (!atBoundary || this.#paxPath !== undefined || this.#paxSize !== undefined || this.#longName !== undefined) {
      this.#failure = new ArchiveExtractionError(
        this.#tinkerPath,
        `the archive ends inside an entry after ${this.bytes} bytes (truncated or corrupt)`,
      );
    }
    await this.#chain;
    this.#throwIfFailed();
  }

  /** Stops: no further writes are started, open files are closed. Never throws. */
  async abort(): Promise<void> {
    this.#aborted = true;
    await this.#chain.catch(() => undefined);
    const cur = this.#current;
    if (cur.kind === "file" && cur.fh !== undefined) {
      await cur.fh.close().catch(() => undefined);
      cur.fh = undefined;
    }
    this.#slotWaiter?.resolve();
  }

  #throwIfFailed(): void {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#aborted) throw new TinkerError("internal: the extraction was stopped");
  }

  /** Consumes `piece` from `offset` as far as possible; stops early only when a write buffer is needed. */
  #run(piece: Buffer, offset: number): number {
    const end = piece.length;
    while (offset < end) {
      switch (this.#phase) {
        case "header": {
          const n = Math.min(BLOCK - this.#headerFill, end - offset);
          piece.copy(this.#header, this.#headerFill, offset, offset + n);
          this.#headerFill += n;
          offset += n;
          if (this.#headerFill === BLOCK) {
            this.#headerFill = 0;
            this.#onHeader(this.bytes + offset);
          }
          break;
        }
        case "data": {
          const cur = this.#current;
          if (cur.kind === "file") {
            let space = SLOT_BYTES - (this.#fill[this.#slot] as number);
            if (space === 0) {
              if (!this.#rotate(cur)) return offset;
              space = SLOT_BYTES;
            }
            const n = Math.min(this.#remaining, end - offset, space);
            const slot = this.#slot;
            piece.copy(this.#slots[slot] as Buffer, this.#fill[slot], offset, offset + n);
            this.#fill[slot] = (this.#fill[slot] as number) + n;
            this.#remaining -= n;
            offset += n;
            if (this.#remaining === 0) this.#endData();
          } else {
            const n = Math.min(this.#remaining, end - offset);
            if (cur.kind === "meta") {
              cur.parts.push(Buffer.from(piece.subarray(offset, offset + n)));
              cur.bytes += n;
            }
            this.#remaining -= n;
            offset += n;
            if (this.#remaining === 0) this.#endData();
          }
          break;
        }
        case "pad": {
          const n = Math.min(this.#pad, end - offset);
          this.#pad -= n;
          offset += n;
          if (this.#pad === 0) this.#phase = "header";
          break;
        }
        case "end":
          return end; // whatever follows the end-of-archive blocks is ignored, as tar does
      }
    }
    return offset;
  }

  #corrupt(detail: string): never {
    this.#failure = new ArchiveExtractionError(this.#tinkerPath, detail);
    throw this.#failure;
  }

  #unsafe(entry: string, reason: string): never {
    const err = new UnsafeArchiveError(entry, reason);
    this.#failure = err;
    throw err;
  }

  #onHeader(at: number): void {
    const h = this.#header;
    if (h.every((b) => b === 0)) {
      this.#phase = "end";
      return;
    }
    const stored = parseNumber(h, 148, 8);
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (h[i] as number);
    if (stored !== sum) {
      this.#corrupt(`not a tar archive, or corrupt: bad header checksum at byte ${at - BLOCK}`);
    }
    const type = String.fromCharCode(h[156] as number);
    const headerSize = parseNumber(h, 124, 12);
    if (headerSize === undefined) this.#corrupt(`bad size field in the header at byte ${at - BLOCK}`);

    if (type === "x" || type === "g" || type === "L" || type === "K") {
      if (headerSize > MAX_META_BYTES) this.#corrupt(`an extended header of ${headerSize} bytes at byte ${at - BLOCK} is too large`);
      this.#startData({ kind: "meta", type, parts: [], bytes: 0 }, headerSize);
      return;
    }

    let name = cString(h, 0, 100);
    const magic = h.toString("latin1", 257, 263);
    if (magic === "ustar\0") {
      const prefix = cString(h, 345, 155);
      if (prefix !== "") name = `${prefix}/${name}`;
    }
    if (this.#longName !== undefined) name = this.#longName;
    if (this.#paxPath !== undefined) name = this.#paxPath;
    const size = this.#paxSize ?? headerSize;
    this.#longName = undefined;
    this.#paxPath = undefined;
    this.#paxSize = undefined;

    const link = LINK_TYPES[type];
    if (link !== undefined) {
      this.#unsafe(name, `it is a ${link} (to ${JSON.stringify(cString(h, 157, 100))}); links are never extracted`);
    }
    const other = OTHER_TYPES[type];
    if (other !== undefined) this.#unsafe(name, other);
    const isFile = type === "0" || type === "\0" || type === "7";
    const isDir = type === "5";
    if (!isFile && !isDir) {
      this.#unsafe(name, `its entry type ${TYPE_NAMES[type] ?? JSON.stringify(type)} is not a regular file or directory`);
    }
    const reason = unsafePathReason(name);
    if (reason !== undefined) this.#unsafe(name, reason);
    const segments = name.split("/").filter((s) => s !== "" && s !== ".");
    const abs = path.join(this.#root, ...segments);
    if (segments.length > 0 && !abs.startsWith(this.#root + path.sep)) this.#unsafe(name, "its path resolves outside the destination");
    const mode = (parseNumber(h, 100, 8) ?? 0) & 0o777;

    if (isDir) {
      if (segments.length > 0) this.#enqueue(() => this.#mkdirs(abs, mode | 0o700));
      this.#startData({ kind: "skip" }, size);
      return;
    }
    if (segments.length === 0) this.#unsafe(name, "its path is empty");
    const entry: FileEntry = { kind: "file", abs, mode: mode | 0o600, mtime: parseNumber(h, 136, 12), fh: undefined, written: 0 };
    this.#enqueue(async () => {
      await this.#mkdirs(path.dirname(abs), 0o755);
      entry.fh = await open(abs, "w", entry.mode);
    });
    this.#startData(entry, size);
  }

  /** Makes `current` the entry whose `size` data bytes follow (ending it at once when there are none). */
  #startData(current: Current, size: number): void {
    this.#current = current;
    this.#remaining = size;
    this.#pad = (BLOCK - (size % BLOCK)) % BLOCK;
    if (size === 0) this.#endData();
    else this.#phase = "data";
  }

  /** The current entry's data is complete: close the file or apply the extended header, then skip the padding. */
  #endData(): void {
    const cur = this.#current;
    if (cur.kind === "file") this.#closeFile(cur);
    else if (cur.kind === "meta") this.#endMeta(cur);
    this.#current = { kind: "skip" };
    this.#phase = this.#pad > 0 ? "pad" : "header";
  }

  #endMeta(meta: { type: string; parts: Buffer[] }): void {
    const data = Buffer.concat(meta.parts);
    if (meta.type === "L") {
      this.#longName = cString(data, 0, data.length);
    } else if (meta.type === "x") {
      const records = parsePax(data);
      if (records === undefined) this.#corrupt("a malformed pax extended header");
      if (records.path !== undefined) this.#paxPath = records.path;
      if (records.size !== undefined) {
        if (!/^\d+$/.test(records.size)) this.#corrupt(`a malformed pax size ${JSON.stringify(records.size)}`);
        this.#paxSize = Number(records.size);
      }
    }
    // "g" (global pax) and "K" (GNU long link name) carry nothing a file or directory needs.
  }

  /** Hands the current slot's unwritten bytes to the disk queue for `entry`. */
  #flush(entry: FileEntry): void {
    const slot = this.#slot;
    const from = this.#flushed[slot] as number;
    const to = this.#fill[slot] as number;
    if (to === from) return;
    this.#flushed[slot] = to;
    this.#inflight[slot] = (this.#inflight[slot] as number) + 1;
    const position = entry.written;
    entry.written += to - from;
    const buffer = this.#slots[slot] as Buffer;
    this.#enqueue(
      async () => {
        const fh = entry.fh as FileHandle;
        let done = 0;
        while (done < to - from) {
          const { bytesWritten } = await fh.write(buffer, from + done, to - from - done, position + done);
          done += bytesWritten;
        }
      },
      false,
      () => {
        this.#inflight[slot] = (this.#inflight[slot] as number) - 1;
        const waiter = this.#slotWaiter;
        if (waiter !== undefined && waiter.index === slot && this.#inflight[slot] === 0) {
          this.#slotWaiter = undefined;
          waiter.resolve();
        }
      },
    );
  }

  /** Moves to the next slot once the current one is full; false when that slot is still being written. */
  #rotate(entry: FileEntry): boolean {
    this.#flush(entry);
    const next = (this.#slot + 1) % SLOTS;
    if ((this.#inflight[next] as number) > 0) return false;
    this.#fill[next] = 0;
    this.#flushed[next] = 0;
    this.#slot = next;
    return true;
  }

  #slotFree(): Promise<void> {
    const next = (this.#slot + 1) % SLOTS;
    if ((this.#inflight[next] as number) === 0 || this.#aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.#slotWaiter = { index: next, resolve };
    });
  }

  /** Hands the file's last bytes to the disk queue, then closes it (setting its mtime). */
  #closeFile(entry: FileEntry): void {
    this.#flush(entry);
    this.#enqueue(async () => {
      const fh = entry.fh;
      entry.fh = undefined;
      if (fh === undefined) return;
      try {
        if (entry.mtime !== undefined && !this.#aborted && this.#failure === undefined) await fh.utimes(entry.mtime, entry.mtime);
      } finally {
        await fh.close();
      }
    }, true);
  }

  async #mkdirs(dir: string, mode: number): Promise<void> {
    if (this.#dirs.has(dir)) return;
    await mkdir(dir, { recursive: true, mode });
    this.#dirs.add(dir);
  }

  /**
   * Appends a disk operation to the serial queue. After a failure or an abort, operations are skipped unless
   * `always` (closing files); `after` runs in every case.
   */
  #enqueue(op: () => Promise<void>, always = false, after?: () => void): void {
    this.#chain = this.#chain.then(async () => {
      try {
        if ((this.#failure !== undefined || this.#aborted) && !always) return;
        await op();
      } catch (err) {
        this.#failure ??=
          err instanceof TinkerError
            ? err
            : new ArchiveExtractionError(this.#tinkerPath, `writing the files failed: ${describe(err)}`, { cause: err });
      } finally {
        after?.();
      }
    });
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Why an entry path may not be extracted, or `undefined`. */
function unsafePathReason(entryPath: string): string | undefined {
  if (entryPath.includes("\0")) return "its path contains a NUL character";
  if (entryPath.startsWith("/") || entryPath.startsWith("\\") || /^[a-zA-Z]:/.test(entryPath)) return "its path is absolute";
  if (entryPath.split(/[\\/]+/).includes("..")) return `its path contains a ".." segment`;
  return undefined;
}

/** A NUL-terminated UTF-8 string field. */
function cString(buf: Buffer, offset: number, length: number): string {
  const end = buf.indexOf(0, offset);
  return buf.toString("utf8", offset, end < 0 || end > offset + length ? offset + length : end);
}

/** An octal (space/NUL padded) or base-256 numeric field; `undefined` when malformed or negative. */
function parseNumber(buf: Buffer, offset: number, length: number): number | undefined {
  const first = buf[offset] as number;
  if ((first & 0x80) !== 0) {
    if (first === 0xff) return undefined; // negative
    let value = first & 0x7f;
    for (let i = offset + 1; i < offset + length; i++) value = value * 256 + (buf[i] as number);
    return Number.isSafeInteger(value) ? value : undefined;
  }
  const text = buf
    .toString("latin1", offset, offset + length)
    .replace(/[\0 ]+$/, "")
    .replace(/^[ \0]+/, "");
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) return undefined;
  return parseInt(text, 8);
}

/** The records of a pax extended header (`"<len> <key>=<value>\n"`), or `undefined` when malformed. */
function parsePax(data: Buffer): Record<string, string> | undefined {
  const records: Record<string, string> = {};
  let offset = 0;
  while (offset < data.length) {
    if (data[offset] === 0) break; // padding
    const space = data.indexOf(0x20, offset);
    if (space < 0) return undefined;
    const len = Number(data.toString("latin1", offset, space));
    if (!Number.isInteger(len) || len <= space - offset || offset + len > data.length || data[offset + len - 1] !== 0x0a) return undefined;
    const record = data.toString("utf8", space + 1, offset + len - 1);
    const eq = record.indexOf("=");
    if (eq <= 0) return undefined;
    records[record.slice(0, eq)] = record.slice(eq + 1);
    offset += len;
  }
  return records;
}
