/**
 * Builds tar archives byte by byte (512-byte ustar headers), including entries no well-behaved tool would
 * write: absolute paths, `..` segments, links that escape, devices and FIFOs. For download tests.
 *
 * @example
 * ```ts
 * const tar = craftTar([
 *   { name: "checkpoint_complete", body: "" },
 *   { name: "../evil", body: "x" },
 * ]);
 * ```
 */

/** One entry of a crafted archive. */
export interface CraftedEntry {
  /** The entry path exactly as written in the header (at most 100 bytes, or split into prefix/name). */
  name: string;
  /** Entry type (default `file`). */
  type?: "file" | "dir" | "symlink" | "hardlink" | "char" | "block" | "fifo";
  /** File contents (files only). */
  body?: string | Buffer;
  /** Link target (links only). */
  linkname?: string;
  /** Permission bits (default 0o644 for files, 0o755 for directories). */
  mode?: number;
}

const TYPE_FLAGS: Record<NonNullable<CraftedEntry["type"]>, string> = {
  file: "0",
  hardlink: "1",
  symlink: "2",
  char: "3",
  block: "4",
  dir: "5",
  fifo: "6",
};

function writeString(buf: Buffer, offset: number, length: number, value: string): void {
  const bytes = Buffer.from(value, "utf8");
  if (bytes.length > length) throw new Error(`crafted tar: ${JSON.stringify(value)} does not fit in ${length} bytes`);
  bytes.copy(buf, offset);
}

function writeOctal(buf: Buffer, offset: number, length: number, value: number): void {
  writeString(buf, offset, length, `${value.toString(8).padStart(length - 1, "0")}\0`);
}

/** One 512-byte ustar header. */
export function tarHeader(entry: CraftedEntry, size: number): Buffer {
  const h = Buffer.alloc(512);
  const type = entry.type ?? "file";
  let name = entry.name;
  let prefix = "";
  if (Buffer.byteLength(name) > 100) {
    const cut = name.lastIndexOf("/", name.length - 1);
    prefix = name.slice(0, cut);
    name = name.slice(cut + 1);
  }
  writeString(h, 0, 100, name);
  writeOctal(h, 100, 8, entry.mode ?? (type === "dir" ? 0o755 : 0o644));
  writeOctal(h, 108, 8, 0);
  writeOctal(h, 116, 8, 0);
  writeOctal(h, 124, 12, size);
  writeOctal(h, 136, 12, Math.floor(Date.now() / 1000));
  h.fill(" ", 148, 156);
  writeString(h, 156, 1, TYPE_FLAGS[type]);
  writeString(h, 157, 100, entry.linkname ?? "");
  writeString(h, 257, 6, "ustar\0");
  writeString(h, 263, 2, "00");
  writeString(h, 265, 32, "user");
  writeString(h, 297, 32, "user");
  writeOctal(h, 329, 8, 0);
  writeOctal(h, 337, 8, 0);
  writeString(h, 345, 155, prefix);
  let sum = 0;
  for (const b of h) sum += b;
  writeString(h, 148, 8, `${sum.toString(8).padStart(6, "0")}\0 `);
  return h;
}

/** A complete tar archive (entries, then two zero blocks). */
export function craftTar(entries: CraftedEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const body = e.type === undefined || e.type === "file" ? Buffer.from(e.body ?? "") : Buffer.alloc(0);
    parts.push(tarHeader(e, body.length), body);
    const pad = (512 - (body.length % 512)) % 512;
    if (pad > 0) parts.push(Buffer.alloc(pad));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** A small, valid checkpoint archive: a few files, a directory and the `checkpoint_complete` marker. */
export function validCheckpointTar(extraBytes = 0): Buffer {
  return craftTar([
    { name: "adapter_config.json", body: JSON.stringify({ r: 8 }) },
    { name: "weights", type: "dir" },
    { name: "weights/adapter_model.safetensors", body: Buffer.alloc(4096 + extraBytes, 7) },
    { name: "checkpoint_complete", body: "" },
  ]);
}
