/**
 * Deterministic random numbers of the local server: the seeded tensors of the tiny model, the fault
 * injection's coin flips, and the per-request random streams of sampling. Nothing here depends on time or
 * on `Math.random`, so every stream is reproducible from its key alone.
 *
 * @module
 */

import { Buffer } from "node:buffer";

/**
 * 32-bit FNV-1a hash of the UTF-8 bytes of `s`.
 *
 * @example
 * ```ts
 * const h = fnv1a("tinker-ts"); // an unsigned 32-bit integer
 * ```
 */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  const bytes = Buffer.from(s, "utf8");
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i]!;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * mulberry32 generator returning uniform floats in [0, 1) (the model's seeded tensors and the server's
 * fault injection use it).
 *
 * @example
 * ```ts
 * const rand = mulberry32(42);
 * const u = rand(); // 0 <= u < 1, the same on every run
 * ```
 */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A new array of `n` values uniform in [-bound, bound), seeded by the string `key`.
 *
 * @example
 * ```ts
 * const w = uniformTensor("tinker-ts/base/Qwen/Qwen3-8B/attn", 256, 0.25);
 * ```
 */
export function uniformTensor(key: string, n: number, bound: number): Float64Array {
  const rand = mulberry32(fnv1a(key));
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = (rand() * 2 - 1) * bound;
  return out;
}

/**
 * Absorbs 32-bit words into a 128-bit state (four multiply-xor lanes) and returns the mixed state.
 * Used to key random streams by structured content (a seed and a token sequence) without building strings.
 */
export class Hash128 {
  #h1 = 0x6a09e667 | 0;
  #h2 = 0xbb67ae85 | 0;
  #h3 = 0x3c6ef372 | 0;
  #h4 = 0xa54ff53a | 0;

  /** Absorbs one 32-bit word (the low 32 bits of `w`). */
  word(w: number): this {
    const k = w | 0;
    const h1 = this.#h2 ^ Math.imul(this.#h1 ^ k, 597399067);
    const h2 = this.#h3 ^ Math.imul(this.#h2 ^ k, -1425107063);
    const h3 = this.#h4 ^ Math.imul(this.#h3 ^ k, 951274213);
    const h4 = h1 ^ Math.imul(this.#h4 ^ k, -1578923117);
    this.#h1 = h1;
    this.#h2 = h2;
    this.#h3 = h3;
    this.#h4 = h4;
    return this;
  }

  /** Absorbs a string (its UTF-16 code units, then its length). */
  text(s: string): this {
    for (let i = 0; i < s.length; i++) this.word(s.charCodeAt(i));
    return this.word(s.length);
  }

  /** Returns the final 128-bit digest as four unsigned 32-bit words. */
  digest(): [number, number, number, number] {
    let h1 = this.#h1,
      h2 = this.#h2,
      h3 = this.#h3,
      h4 = this.#h4;
    h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067);
    h2 = Math.imul(h4 ^ (h2 >>> 22), -1425107063);
    h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213);
    h4 = Math.imul(h2 ^ (h4 >>> 19), -1578923117);
    h1 ^= h2 ^ h3 ^ h4;
    h2 ^= h1;
    h3 ^= h1;
    h4 ^= h1;
    return [h1 >>> 0, h2 >>> 0, h3 >>> 0, h4 >>> 0];
  }
}

/**
 * An sfc32 generator seeded with a 128-bit key, returning uniform doubles in [0, 1) with 53 random bits.
 *
 * @example
 * ```ts
 * const rand = sfc32Stream(new Hash128().text("my-key").digest());
 * const u = rand();
 * ```
 */
export function sfc32Stream(key: readonly [number, number, number, number]): () => number {
  let a = key[0] | 0,
    b = key[1] | 0,
    c = key[2] | 0,
    d = key[3] | 0;
  const next = (): number => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  };
  for (let i = 0; i < 15; i++) next(); // decorrelate nearby keys
  return () => {
    const hi = next() >>> 5; // 27 bits
    const lo = next() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  };
}
