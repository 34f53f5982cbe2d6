/**
 * Sampling kernels of the tiny model (no HTTP): next-token log-probabilities over the full vocabulary,
 * prompt log-probabilities (and their top-k), and seeded sampling with temperature, top_k, top_p, max_tokens
 * and stop tokens. All of it works on the factored softmax, so a sampling step costs O(√V) (top_p: O(√V·log V);
 * top_k = K: O(√V·log V + K·log K)), not O(V).
 *
 * Semantics:
 * - The reported logprob of a sampled token is the model's own log p(token | prefix) (temperature 1, no
 *   truncation), the value `forward` returns for that token, so importance ratios are exactly 1 on-policy.
 * - temperature T scales the logits (T = 0 is greedy); top_k keeps the K most likely ids (−1 or 0: off;
 *   1: greedy); top_p keeps the smallest set of most likely ids whose probability reaches p (after
 *   temperature and top_k; ids tied at the boundary all stay); the draw is from the renormalised rest.
 * - A sample ends with stop reason "stop" when it draws a stop token (the token is included in `tokens`),
 *   else "length" after `maxTokens` tokens. Without `stopTokenIds` the base model's end-of-sequence ids stop.
 * - The random stream of sample i depends only on (seed, prompt tokens, i): the same request with the same
 *   seed gives the same tokens anywhere, and a longer `maxTokens` extends a sample without changing its prefix.
 *
 * @module
 */

import type { Cursor } from "./net.js";
import { Hash128, sfc32Stream } from "./rng.js";
import type { TinyLoraModel } from "./tiny-model.js";
import { isObject, ModelInputError } from "./types.js";
import { vocabForBaseModel, type Factorization } from "./vocab.js";

/** Sampling parameters of {@link sample}. */
export type SampleOptions = {
  /** Tokens to generate at most (integer ≥ 1). */
  maxTokens: number;
  /** Logit temperature ≥ 0 (default 1; 0 = greedy). */
  temperature?: number;
  /** Keep the K most likely ids (default −1 = off; 0 also means off; 1 = greedy). */
  topK?: number;
  /** Nucleus mass in (0, 1] (default 1 = off). */
  topP?: number;
  /** Token ids that end a sample (default: the base model's end-of-sequence ids; [] = none). */
  stopTokenIds?: readonly number[] | null;
  /** Seed of the random stream (an integer, bigint or string). */
  seed: number | bigint | string;
};

/** One generated sequence. */
export type SampledSequence = {
  /** Generated token ids (a stop token that ended the sample is included). */
  tokens: number[];
  /** log p(token | prefix) of each generated token (temperature 1, untruncated). */
  logprobs: number[];
  stopReason: "stop" | "length";
};

/** One entry of a top-k row: [token id, logprob]. */
export type TopEntry = [number, number];

const fail = (field: string, msg: string): never => {
  throw new ModelInputError(`${field}: ${msg}`, field);
};

/**
 * The ids that end a sample of `baseModel` when the request gives no stop tokens (Qwen3: 151645, 151643;
 * Llama 3: 128009, 128001, 128008; gpt-oss: 200002, 199999, 200012; unknown models: none).
 *
 * @example
 * ```ts
 * endOfSequenceIds("Qwen/Qwen3-8B"); // [151645, 151643]
 * ```
 */
export function endOfSequenceIds(baseModel: string): readonly number[] {
  return vocabForBaseModel(baseModel).eosTokenIds;
}

/** Checks a token sequence against the model's vocabulary; returns it as Int32Array. */
function checkTokens(model: TinyLoraModel, tokens: unknown, field: string, allowEmpty: boolean): Int32Array {
  if (!Array.isArray(tokens) && !ArrayBuffer.isView(tokens)) return fail(field, "must be an array of token ids");
  const arr = tokens as ArrayLike<number | bigint>;
  if (arr.length === 0 && !allowEmpty) fail(field, "must contain at least one token");
  const V = model.config.vocabSize;
  const out = new Int32Array(arr.length);
  for (let i = 0; i < arr.length; i++) {
    const v = typeof arr[i] === "bigint" ? Number(arr[i]) : (arr[i] as number);
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v >= V)
      fail(`${field}[${i}]`, `token ${String(v)} is not an integer in [0, ${V})`);
    out[i] = v;
  }
  return out;
}

function run(model: TinyLoraModel, tokens: Int32Array, upTo: number): Cursor {
  const cur = model.cursor();
  for (let i = 0; i < upTo; i++) cur.push(tokens[i]!);
  return cur;
}

/**
 * log p(id | prefix) for every id of the vocabulary (length V), after the non-empty `prefix`.
 *
 * @example
 * ```ts
 * const lp = nextTokenLogprobs(model, [151644, 872]); // Float64Array(151936), logsumexp(lp) ≈ 0
 * ```
 */
export function nextTokenLogprobs(model: TinyLoraModel, prefix: ArrayLike<number>): Float64Array {
  const toks = checkTokens(model, prefix, "prefix", false);
  const cur = run(model, toks, toks.length);
  const { classSize: S, numClasses: C, vocabSize: V } = model.vocab;
  const out = new Float64Array(V);
  for (let c = 0, id = 0; c < C; c++) {
    const lcc = cur.lc[c]!;
    for (let s = 0; s < S && id < V; s++, id++) out[id] = lcc + cur.ls[s]! - cur.logZ;
  }
  return out;
}

/**
 * The log-probability of each prompt token given the tokens before it: `null` at position 0, then
 * log p(prompt[i] | prompt[0..i)). Equal, bit for bit, to the `logprobs` that forward computes for
 * model_input = prompt[0..n−1) and target_tokens = prompt[1..n) (forward rounds them to float32).
 *
 * @example
 * ```ts
 * promptLogprobs(model, [1, 2, 3]); // [null, lp(2 | 1), lp(3 | 1 2)]
 * ```
 */
export function promptLogprobs(model: TinyLoraModel, prompt: ArrayLike<number>): Array<number | null> {
  const toks = checkTokens(model, prompt, "prompt", false);
  const out: Array<number | null> = [null];
  const cur = model.cursor();
  for (let i = 1; i < toks.length; i++) {
    cur.push(toks[i - 1]!);
    out.push(cur.logprob(toks[i]!));
  }
  return out;
}

/**
 * The `k` most likely ids (with their logprobs, most likely first, ties by smaller id) at every prompt
 * position: `null` at position 0, then the distribution after prompt[0..i).
 *
 * @example
 * ```ts
 * topkPromptLogprobs(model, [1, 2, 3], 2); // [null, [[id, lp], [id, lp]], [[id, lp], [id, lp]]]
 * ```
 */
export function topkPromptLogprobs(model: TinyLoraModel, prompt: ArrayLike<number>, k: number): Array<TopEntry[] | null> {
  const toks = checkTokens(model, prompt, "prompt", false);
  if (!Number.isInteger(k) || k < 1) fail("topk_prompt_logprobs", `must be an integer >= 1, got ${String(k)}`);
  const out: Array<TopEntry[] | null> = [null];
  const cur = model.cursor();
  for (let i = 1; i < toks.length; i++) {
    cur.push(toks[i - 1]!);
    const { ids, values } = topKJoint(cur.lc, cur.ls, model.vocab, k);
    out.push(ids.map((id, j) => [id, values[j]! - cur.logZ]));
  }
  return out;
}

/**
 * The random stream of sample `sampleIndex` of a request: a function of the seed and the prompt only.
 *
 * @example
 * ```ts
 * const rand = sampleRandomStream(42, [1, 2, 3], 0);
 * rand(); // the same value on every run and every machine
 * ```
 */
export function sampleRandomStream(seed: number | bigint | string, prompt: ArrayLike<number>, sampleIndex: number): () => number {
  const h = new Hash128().text("tinker-ts/sample/v1").text(String(seed));
  for (let i = 0; i < prompt.length; i++) h.word(prompt[i]!);
  h.word(prompt.length).word(sampleIndex);
  return sfc32Stream(h.digest());
}

type Resolved = { maxTokens: number; temperature: number; topK: number; topP: number; stop: Set<number>; greedy: boolean };

function resolveOptions(model: TinyLoraModel, opts: SampleOptions): Resolved {
  if (!isObject(opts)) return fail("sampling_params", "must be an object");
  const { maxTokens } = opts;
  const temperature = opts.temperature ?? 1;
  const topK = opts.topK ?? -1;
  const topP = opts.topP ?? 1;
  if (!Number.isSafeInteger(maxTokens) || maxTokens < 1)
    fail("sampling_params.max_tokens", `must be an integer >= 1, got ${String(maxTokens)}`);
  if (typeof temperature !== "number" || !Number.isFinite(temperature) || temperature < 0) {
    fail("sampling_params.temperature", `must be a finite number >= 0, got ${String(temperature)}`);
  }
  if (!Number.isSafeInteger(topK) || topK < -1) fail("sampling_params.top_k", `must be -1 (off) or an integer >= 1, got ${String(topK)}`);
  if (typeof topP !== "number" || !(topP > 0 && topP <= 1)) fail("sampling_params.top_p", `must be in (0, 1], got ${String(topP)}`);
  const seed = opts.seed;
  if (!(typeof seed === "bigint" || typeof seed === "string" || (typeof seed === "number" && Number.isSafeInteger(seed)))) {
    fail("sampling_params.seed", `must be an integer, got ${String(seed)}`);
  }
  const stopIds = opts.stopTokenIds ?? endOfSequenceIds(model.config.baseModel);
  if (!Array.isArray(stopIds)) return fail("sampling_params.stop", "must be an array of token ids");
  stopIds.forEach((t, i) => {
    if (!Number.isSafeInteger(t) || t < 0) fail(`sampling_params.stop[${i}]`, `token ${String(t)} is not a non-negative integer`);
  });
  return { maxTokens, temperature, topK: topK === 0 ? -1 : topK, topP, stop: new Set(stopIds), greedy: temperature === 0 || topK === 1 };
}

/**
 * Samples `numSamples` continuations of `prompt` (see the module documentation for the semantics).
 *
 * @example
 * ```ts
 * const [s] = sample(model, [151644, 872], 1, { maxTokens: 8, temperature: 0.7, topP: 0.9, seed: 42 });
 * console.log(s.tokens, s.logprobs, s.stopReason); // stopReason "stop" | "length"
 * ```
 */
export function sample(model: TinyLoraModel, prompt: ArrayLike<number>, numSamples: number, opts: SampleOptions): SampledSequence[] {
  const toks = checkTokens(model, prompt, "prompt", false);
  if (!Number.isSafeInteger(numSamples) || numSamples < 1) fail("num_samples", `must be an integer >= 1, got ${String(numSamples)}`);
  const p = resolveOptions(model, opts);
  const base = run(model, toks, toks.length);
  const cur = model.cursor();
  const scratch = new Scratch(model.vocab);
  const out: SampledSequence[] = [];
  for (let i = 0; i < numSamples; i++) {
    cur.copyFrom(base);
    const rand = sampleRandomStream(opts.seed, toks, i);
    const tokens: number[] = [];
    const logprobs: number[] = [];
    let stopReason: "stop" | "length" = "length";
    for (let step = 0; step < p.maxTokens; step++) {
      const id = drawNext(cur, p, rand, scratch);
      tokens.push(id);
      logprobs.push(cur.logprob(id));
      if (p.stop.has(id)) {
        stopReason = "stop";
        break;
      }
      if (step + 1 < p.maxTokens) cur.push(id);
    }
    out.push({ tokens, logprobs, stopReason });
  }
  return out;
}

/** Reusable buffers of one sampling call. */
class Scratch {
  readonly tc: Float64Array;
  readonly ts: Float64Array;
  readonly w: Float64Array;
  constructor(f: Factorization) {
    this.tc = new Float64Array(f.numClasses);
    this.ts = new Float64Array(f.classSize);
    this.w = new Float64Array(Math.max(f.numClasses, f.classSize));
  }
}

/** out = log_softmax(z / T) over n entries. */
function temperedLogSoftmax(z: Float64Array, n: number, T: number, out: Float64Array): void {
  let max = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = z[i]! / T;
    out[i] = v;
    if (v > max) max = v;
  }
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.exp(out[i]! - max);
  const lse = max + Math.log(sum);
  for (let i = 0; i < n; i++) out[i] = out[i]! - lse;
}

function drawNext(cur: Cursor, p: Resolved, rand: () => number, sc: Scratch): number {
  const f = cur.net.f;
  if (p.greedy) return argmaxId(cur.lc, cur.ls, f);
  let tc = cur.lc;
  let ts = cur.ls;
  if (p.temperature !== 1) {
    temperedLogSoftmax(cur.zc, f.numClasses, p.temperature, sc.tc);
    temperedLogSoftmax(cur.zs, f.classSize, p.temperature, sc.ts);
    tc = sc.tc;
    ts = sc.ts;
  }
  if (p.topK > 0 && p.topK < f.vocabSize) {
    const { ids, values } = topKJoint(tc, ts, f, p.topK);
    return drawFromList(ids, values, p.topP, rand);
  }
  if (p.topP < 1) return drawNucleus(tc, ts, f, p.topP, rand, sc);
  return drawFull(tc, ts, f, rand, sc);
}

/** Draws index i < n with probability w[i] / Σw (w ≥ 0, not all 0). */
function drawIndex(w: Float64Array, n: number, rand: () => number): number {
  let total = 0;
  for (let i = 0; i < n; i++) total += w[i]!;
  const u = rand() * total;
  let acc = 0;
  let last = -1;
  for (let i = 0; i < n; i++) {
    const wi = w[i]!;
    if (wi <= 0) continue;
    acc += wi;
    last = i;
    if (u < acc) return i;
  }
  return last;
}

/** The most likely valid id (ties: smaller id). */
function argmaxId(lc: Float64Array, ls: Float64Array, f: Factorization): number {
  const { numClasses: C, classSize: S, lastClassSize: L } = f;
  let bestS = 0;
  for (let s = 1; s < S; s++) if (ls[s]! > ls[bestS]!) bestS = s;
  let bestValid = 0;
  for (let s = 1; s < L; s++) if (ls[s]! > ls[bestValid]!) bestValid = s;
  let id = (C - 1) * S + bestValid;
  let best = lc[C - 1]! + ls[bestValid]!;
  if (C > 1) {
    let bestC = 0;
    for (let c = 1; c < C - 1; c++) if (lc[c]! > lc[bestC]!) bestC = c;
    const v = lc[bestC]! + ls[bestS]!;
    if (v >= best) {
      best = v;
      id = bestC * S + bestS;
    }
  }
  return id;
}

/** Draws from the whole (tempered) distribution: the class first, then the slot within it. */
function drawFull(tc: Float64Array, ts: Float64Array, f: Factorization, rand: () => number, sc: Scratch): number {
  const { numClasses: C, classSize: S, lastClassSize: L } = f;
  const w = sc.w;
  let validMass = 0;
  for (let s = 0; s < L; s++) validMass += Math.exp(ts[s]!);
  for (let c = 0; c < C - 1; c++) w[c] = Math.exp(tc[c]!);
  w[C - 1] = Math.exp(tc[C - 1]!) * validMass;
  const c = drawIndex(w, C, rand);
  const n = c === C - 1 ? L : S;
  for (let s = 0; s < n; s++) w[s] = Math.exp(ts[s]!);
  return c * S + drawIndex(w, n, rand);
}

/** Number of entries ≥ thr in a descending array. */
function countAtLeast(desc: Float64Array, thr: number): number {
  let lo = 0;
  let hi = desc.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (desc[mid]! >= thr) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function sortedDesc(values: Float64Array, n: number): { desc: Float64Array; prefix: Float64Array } {
  const desc = Float64Array.from(values.subarray(0, n)).sort().reverse();
  const prefix = new Float64Array(n + 1);
  for (let i = 0; i < n; i++) prefix[i + 1] = prefix[i]! + Math.exp(desc[i]!);
  return { desc, prefix };
}

/** Draws from the nucleus: ids with log-probability ≥ log τ, the largest τ whose set holds mass ≥ topP. */
function drawNucleus(tc: Float64Array, ts: Float64Array, f: Factorization, topP: number, rand: () => number, sc: Scratch): number {
  const { numClasses: C, classSize: S, lastClassSize: L } = f;
  const all = sortedDesc(ts, S);
  const valid = L === S ? all : sortedDesc(ts, L);
  const pc = new Float64Array(C);
  for (let c = 0; c < C; c++) pc[c] = Math.exp(tc[c]!);
  const massAbove = (logTau: number): number => {
    let m = 0;
    for (let c = 0; c < C; c++) {
      const t = c === C - 1 ? valid : all;
      m += pc[c]! * t.prefix[countAtLeast(t.desc, logTau - tc[c]!)]!;
    }
    return m;
  };
  const total = massAbove(-Infinity);
  const target = topP * total;
  const top = argmaxId(tc, ts, f);
  const topC = Math.floor(top / S);
  let hi = tc[topC]! + ts[top - topC * S]!;
  let logTau = hi;
  if (massAbove(hi) < target) {
    let lo = Infinity;
    for (let c = 0; c < C; c++) lo = Math.min(lo, tc[c]!);
    lo += all.desc[S - 1]! - 1; // below every valid id's log-weight: the whole vocabulary
    for (let it = 0; it < 64 && lo < hi; it++) {
      const mid = lo + (hi - lo) / 2;
      if (mid === lo || mid === hi) break;
      if (massAbove(mid) >= target) lo = mid;
      else hi = mid;
    }
    logTau = lo;
  }
  const w = sc.w;
  for (let c = 0; c < C; c++) {
    const t = c === C - 1 ? valid : all;
    w[c] = pc[c]! * t.prefix[countAtLeast(t.desc, logTau - tc[c]!)]!;
  }
  const c = drawIndex(w, C, rand);
  const n = c === C - 1 ? L : S;
  const thr = logTau - tc[c]!;
  for (let s = 0; s < n; s++) w[s] = ts[s]! >= thr ? Math.exp(ts[s]!) : 0;
  return c * S + drawIndex(w, n, rand);
}

/** Draws from a descending list of (id, log-weight), keeping the top_p nucleus of it. */
function drawFromList(ids: number[], values: number[], topP: number, rand: () => number): number {
  const n = ids.length;
  const w = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    w[i] = Math.exp(values[i]! - values[0]!);
    total += w[i]!;
  }
  let keep = n;
  if (topP < 1) {
    let acc = 0;
    for (let i = 0; i < n; i++) {
      acc += w[i]!;
      if (acc >= topP * total) {
        keep = i + 1;
        while (keep < n && values[keep] === values[i]) keep++; // ties at the boundary stay
        break;
      }
    }
  }
  return ids[drawIndex(w, keep, rand)]!;
}

/**
 * The k largest joint log-weights lc[c] + ls[s] over valid ids, by best-first search over the two factors
 * sorted in descending order (O((C + S)·log + k·log k)). Sorted by value descending, then id ascending.
 */
function topKJoint(lc: Float64Array, ls: Float64Array, f: Factorization, k: number): { ids: number[]; values: number[] } {
  const { numClasses: C, classSize: S, vocabSize: V } = f;
  const want = Math.min(k, V);
  const cs = Array.from({ length: C }, (_, i) => i).sort((a, b) => lc[b]! - lc[a]! || a - b);
  const ss = Array.from({ length: S }, (_, i) => i).sort((a, b) => ls[b]! - ls[a]! || a - b);
  // Max-heap of grid cells (a, b) → value lc[cs[a]] + ls[ss[b]].
  const hv: number[] = [];
  const ha: number[] = [];
  const hb: number[] = [];
  const better = (i: number, j: number): boolean =>
    hv[i]! > hv[j]! || (hv[i] === hv[j] && cs[ha[i]!]! * S + ss[hb[i]!]! < cs[ha[j]!]! * S + ss[hb[j]!]!);
  const swap = (i: number, j: number): void => {
    [hv[i], hv[j]] = [hv[j]!, hv[i]!];
    [ha[i], ha[j]] = [ha[j]!, ha[i]!];
    [hb[i], hb[j]] = [hb[j]!, hb[i]!];
  };
  const push = (a: number, b: number): void => {
    hv.push(lc[cs[a]!]! + ls[ss[b]!]!);
    ha.push(a);
    hb.push(b);
    for (let i = hv.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (!better(i, parent)) break;
      swap(i, parent);
      i = parent;
    }
  };
  const pop = (): [number, number, number] => {
    const top: [number, number, number] = [hv[0]!, ha[0]!, hb[0]!];
    const last = hv.length - 1;
    swap(0, last);
    hv.pop();
    ha.pop();
    hb.pop();
    for (let i = 0; ; ) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < hv.length && better(l, m)) m = l;
      if (r < hv.length && better(r, m)) m = r;
      if (m === i) break;
      swap(i, m);
      i = m;
    }
    return top;
  };
  const found: Array<[number, number]> = [];
  push(0, 0);
  while (found.length < want && hv.length > 0) {
    const [v, a, b] = pop();
    const id = cs[a]! * S + ss[b]!;
    if (id < V) found.push([id, v]);
    if (b + 1 < S) push(a, b + 1);
    if (b === 0 && a + 1 < C) push(a + 1, 0);
  }
  found.sort((x, y) => y[1] - x[1] || x[0] - y[0]);
  return { ids: found.map((e) => e[0]), values: found.map((e) => e[1]) };
}
