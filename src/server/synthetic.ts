/**
 * Deterministic pseudo-random bytes for synthetic (benchmark) checkpoints, generated and written in
 * chunks so that arbitrarily large files never sit in memory.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { open } from "node:fs/promises";

const CHUNK = 1 << 20;

/**
 * Yields `size` deterministic pseudo-random bytes derived from `seed`, in chunks of at most 1 MiB
 * (xorshift128 over 32-bit words, seeded from SHA-256 of `seed`).
 *
 * @example
 * ```ts
 * let n = 0;
 * for (const chunk of syntheticChunks("demo", 3_000_000)) n += chunk.length;
 * ```
 */
export function* syntheticChunks(seed: string, size: number): Generator<Buffer> {
  const h = createHash("sha256").update(seed).digest();
  let x = h.readUInt32LE(0) | 1;
  let y = h.readUInt32LE(4) | 2;
  let z = h.readUInt32LE(8) | 4;
  let w = h.readUInt32LE(12) | 8;
  let remaining = size;
  while (remaining > 0) {
    const n = Math.min(CHUNK, remaining);
    const words = new Uint32Array(Math.ceil(n / 4));
    for (let i = 0; i < words.length; i++) {
      const t = x ^ (x << 11);
      x = y;
      y = z;
      z = w;
      w = (w ^ (w >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
      words[i] = w;
    }
    yield Buffer.from(words.buffer, 0, n);
    remaining -= n;
  }
}

/** Writes `size` synthetic bytes for `seed` to a new file at `path`, fsyncing it. */
export async function writeSyntheticFile(path: string, seed: string, size: number): Promise<void> {
  const fh = await open(path, "wx", 0o644);
  try {
    for (const chunk of syntheticChunks(seed, size)) await fh.write(chunk);
    await fh.sync();
  } finally {
    await fh.close();
  }
}
