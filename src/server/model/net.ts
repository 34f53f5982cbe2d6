/**
 * The tiny network: frozen base weights derived from the base model name, LoRA adapters, and a cursor that
 * runs the model one position at a time (forward, log-probabilities, and the exact backward pass).
 *
 * For a token sequence t_0..t_{n-1} (d = 16; vocabulary V factored as C classes × S slots, id = c·S + s):
 *
 * ```text
 * x_i   = E_class[c(t_i)] + E_slot[s(t_i)]          (frozen factored embedding, C×d and S×d)
 * a_i   = mean(x_0..x_i)                           (causal uniform attention)
 * h_i   = x_i + W_attn_eff · a_i                   (d×d)
 * m_i   = h_i + W2 · relu(W_mlp_eff · h_i)         (W_mlp d×d, W2 d×d frozen)
 * zc    = W_class_eff · m_i   (C),   zs = W_slot_eff · m_i   (S)
 * log p(id = c·S + s) = log_softmax(zc)[c] + log_softmax(zs)[s] − log Z',
 *   Z' = 1 − p_c(C−1) · Σ_{s ≥ L} p_s(s)          (renormalises over the V valid ids; L = slots of the last class)
 * W_eff = W + (alpha / rank) · B · A               (A: rank×in, B: out×rank)
 * ```
 *
 * Every id below V gets a proper probability, and the cost per position is O((C + S)·d) = O(√V·d).
 *
 * @module
 */

import { HIDDEN_SIZE, logSoftmax, loraGrads16, loraMerge16, matTVec16, matVec16, outerAcc16 } from "./kernels.js";
import { uniformTensor } from "./rng.js";
import { factorize, type Factorization } from "./vocab.js";
import type { TinyModelConfig } from "./types.js";

/** The adaptable modules. */
export type ModuleKind = "attn" | "mlp" | "class_head" | "slot_head";

/** PEFT-style module paths and target-module names for each adaptable module. */
export const MODULE_PATHS: Readonly<Record<ModuleKind, { path: string; target: string }>> = Object.freeze({
  attn: { path: "base_model.model.layers.0.self_attn", target: "self_attn" },
  mlp: { path: "base_model.model.layers.0.mlp", target: "mlp" },
  class_head: { path: "base_model.model.lm_head.class_proj", target: "lm_head" },
  slot_head: { path: "base_model.model.lm_head.slot_proj", target: "lm_head" },
});

/** A trainable tensor with its gradient and Adam moments. */
export type Param = {
  name: string;
  shape: [number, number];
  data: Float64Array;
  grad: Float64Array;
  expAvg: Float64Array;
  expAvgSq: Float64Array;
};

/** A LoRA-adapted matrix. */
export type LoraModule = {
  kind: ModuleKind;
  out: number;
  in: number;
  base: Float64Array;
  /** Effective weight base + scaling·B·A. */
  eff: Float64Array;
  /** Gradient of the loss w.r.t. the effective weight for the current batch. */
  gEff: Float64Array;
  A: Param;
  B: Param;
};

type BaseWeights = Readonly<{
  embClass: Float64Array; // C×d
  embSlot: Float64Array; // S×d
  attn: Float64Array; // d×d
  mlp: Float64Array; // d×d
  w2: Float64Array; // d×d
  headClass: Float64Array; // C×d
  headSlot: Float64Array; // S×d
}>;

/** Frozen base weights are read-only, so models of one base model share them (bounded cache). */
const baseCache = new Map<string, BaseWeights>();
const BASE_CACHE_LIMIT = 16;

function baseWeights(baseModel: string, f: Factorization): BaseWeights {
  const cacheKey = `${f.vocabSize}/${baseModel}`;
  const hit = baseCache.get(cacheKey);
  if (hit) return hit;
  const d = HIDDEN_SIZE;
  const inv = 1 / Math.sqrt(d);
  const key = (name: string) => `tinker-ts/base/v2/${f.vocabSize}/${baseModel}/${name}`;
  const w: BaseWeights = Object.freeze({
    embClass: uniformTensor(key("embed_class"), f.numClasses * d, Math.SQRT1_2),
    embSlot: uniformTensor(key("embed_slot"), f.classSize * d, Math.SQRT1_2),
    attn: uniformTensor(key("attn"), d * d, inv),
    mlp: uniformTensor(key("mlp"), d * d, inv),
    w2: uniformTensor(key("w2"), d * d, inv),
    headClass: uniformTensor(key("head_class"), f.numClasses * d, inv),
    headSlot: uniformTensor(key("head_slot"), f.classSize * d, inv),
  });
  if (baseCache.size >= BASE_CACHE_LIMIT) baseCache.delete(baseCache.keys().next().value as string);
  baseCache.set(cacheKey, w);
  return w;
}

function makeParam(name: string, rows: number, cols: number, data: Float64Array): Param {
  const n = rows * cols;
  return { name, shape: [rows, cols], data, grad: new Float64Array(n), expAvg: new Float64Array(n), expAvgSq: new Float64Array(n) };
}

/** The network of one model: base weights, LoRA modules, and the effective weights (merged lazily). */
export class TinyNet {
  readonly f: Factorization;
  readonly rank: number;
  readonly scaling: number;
  readonly base: BaseWeights;
  readonly attn: LoraModule | undefined;
  readonly mlp: LoraModule | undefined;
  readonly classHead: LoraModule | undefined;
  readonly slotHead: LoraModule | undefined;
  readonly modules: readonly LoraModule[];
  readonly params: readonly Param[];
  #fresh = false;

  constructor(config: TinyModelConfig) {
    this.f = factorize(config.vocabSize);
    this.rank = config.rank;
    this.scaling = config.alpha / config.rank;
    this.base = baseWeights(config.baseModel, this.f);
    const r = config.rank;
    const mk = (kind: ModuleKind, out: number, inDim: number, base: Float64Array): LoraModule => {
      const path = MODULE_PATHS[kind].path;
      const nameA = `${path}.lora_A.weight`;
      const nameB = `${path}.lora_B.weight`;
      // PEFT default: kaiming-uniform(a=sqrt(5)) for A, i.e. U(-1/sqrt(in), 1/sqrt(in)); B = 0.
      const aInit = uniformTensor(`tinker-ts/lora/${config.seed}/${nameA}`, r * inDim, 1 / Math.sqrt(inDim));
      return {
        kind,
        out,
        in: inDim,
        base,
        eff: new Float64Array(out * inDim),
        gEff: new Float64Array(out * inDim),
        A: makeParam(nameA, r, inDim, aInit),
        B: makeParam(nameB, out, r, new Float64Array(out * r)),
      };
    };
    const d = HIDDEN_SIZE;
    this.attn = config.trainAttn ? mk("attn", d, d, this.base.attn) : undefined;
    this.mlp = config.trainMlp ? mk("mlp", d, d, this.base.mlp) : undefined;
    this.classHead = config.trainUnembed ? mk("class_head", this.f.numClasses, d, this.base.headClass) : undefined;
    this.slotHead = config.trainUnembed ? mk("slot_head", this.f.classSize, d, this.base.headSlot) : undefined;
    this.modules = [this.attn, this.mlp, this.classHead, this.slotHead].filter((m): m is LoraModule => m !== undefined);
    this.params = this.modules.flatMap((m) => [m.A, m.B]);
  }

  /** Marks the effective weights stale (call after any change of a LoRA tensor). */
  invalidate(): void {
    this.#fresh = false;
  }

  /** Recomputes eff = base + scaling · B · A for every adapted module, if stale. */
  refresh(): void {
    if (this.#fresh) return;
    for (const mod of this.modules) loraMerge16(mod.base, mod.A.data, mod.B.data, mod.out, this.rank, this.scaling, mod.eff);
    this.#fresh = true;
  }

  get Wa(): Float64Array {
    return this.attn ? this.attn.eff : this.base.attn;
  }
  get Wm(): Float64Array {
    return this.mlp ? this.mlp.eff : this.base.mlp;
  }
  get Wc(): Float64Array {
    return this.classHead ? this.classHead.eff : this.base.headClass;
  }
  get Ws(): Float64Array {
    return this.slotHead ? this.slotHead.eff : this.base.headSlot;
  }

  /** Zeroes the per-batch gradients of the effective weights. */
  zeroEffGrads(): void {
    for (const mod of this.modules) mod.gEff.fill(0);
  }

  /** Adds dL/dA = s·Bᵀ·G and dL/dB = s·G·Aᵀ (G = dL/dW_eff) to the accumulated gradients. */
  accumulateLoraGrads(): void {
    for (const mod of this.modules) {
      loraGrads16(mod.gEff, mod.A.data, mod.B.data, mod.out, this.rank, this.scaling, mod.A.grad, mod.B.grad);
    }
  }
}

/**
 * Runs a {@link TinyNet} over one sequence, a position at a time. After {@link Cursor.push} the cursor holds
 * the next-token distribution's factors: `lc`/`pc` (class log-probs/probs), `ls`/`ps` (slot log-probs/probs),
 * the raw logits `zc`/`zs`, and `logZ` (the renormalisation over valid ids).
 */
export class Cursor {
  readonly net: TinyNet;
  /** Tokens pushed so far. */
  count = 0;
  readonly sum = new Float64Array(HIDDEN_SIZE);
  readonly x = new Float64Array(HIDDEN_SIZE);
  readonly a = new Float64Array(HIDDEN_SIZE);
  readonly h = new Float64Array(HIDDEN_SIZE);
  readonly u = new Float64Array(HIDDEN_SIZE);
  readonly ru = new Float64Array(HIDDEN_SIZE);
  readonly m = new Float64Array(HIDDEN_SIZE);
  readonly zc: Float64Array;
  readonly lc: Float64Array;
  readonly pc: Float64Array;
  readonly zs: Float64Array;
  readonly ls: Float64Array;
  readonly ps: Float64Array;
  /** p_class(C−1), Σ_{s ≥ L} p_slot(s), Z' = 1 − pLast·tail and log Z'. */
  pLast = 1;
  tail = 0;
  zp = 1;
  logZ = 0;
  readonly #tmp = new Float64Array(HIDDEN_SIZE);
  readonly #dm = new Float64Array(HIDDEN_SIZE);
  readonly #du = new Float64Array(HIDDEN_SIZE);
  readonly #dh = new Float64Array(HIDDEN_SIZE);
  readonly #dzc: Float64Array;
  readonly #dzs: Float64Array;

  constructor(net: TinyNet) {
    this.net = net;
    const C = net.f.numClasses;
    const S = net.f.classSize;
    this.zc = new Float64Array(C);
    this.lc = new Float64Array(C);
    this.pc = new Float64Array(C);
    this.zs = new Float64Array(S);
    this.ls = new Float64Array(S);
    this.ps = new Float64Array(S);
    this.#dzc = new Float64Array(C);
    this.#dzs = new Float64Array(S);
  }

  /** Starts a new sequence. */
  reset(): void {
    this.count = 0;
    this.sum.fill(0);
  }

  /** Copies the state of `other` (same net) into this cursor: continuing either gives identical results. */
  copyFrom(other: Cursor): void {
    this.count = other.count;
    for (const k of ["sum", "x", "a", "h", "u", "ru", "m", "zc", "lc", "pc", "zs", "ls", "ps"] as const) this[k].set(other[k]);
    this.pLast = other.pLast;
    this.tail = other.tail;
    this.zp = other.zp;
    this.logZ = other.logZ;
  }

  /** Feeds the next token (a valid id) and computes the distribution of the token after it. */
  push(token: number): void {
    const net = this.net;
    net.refresh();
    const d = HIDDEN_SIZE;
    const { classSize: S, numClasses: C, lastClassSize: L } = net.f;
    const c = Math.floor(token / S);
    const o1 = c * d;
    const o2 = (token - c * S) * d;
    const E1 = net.base.embClass;
    const E2 = net.base.embSlot;
    const { sum, x, a, h, u, ru, m } = this;
    const tmp = this.#tmp;
    const invCount = 1 / ++this.count;
    for (let k = 0; k < d; k++) {
      const xk = E1[o1 + k]! + E2[o2 + k]!;
      x[k] = xk;
      sum[k] = sum[k]! + xk;
      a[k] = sum[k]! * invCount;
    }
    matVec16(net.Wa, d, a, tmp); // h = x + W_attn · a
    for (let k = 0; k < d; k++) h[k] = x[k]! + tmp[k]!;
    matVec16(net.Wm, d, h, u); // u = W_mlp · h
    for (let k = 0; k < d; k++) {
      const uk = u[k]!;
      ru[k] = uk > 0 ? uk : 0;
    }
    matVec16(net.base.w2, d, ru, tmp); // m = h + W2 · relu(u)
    for (let k = 0; k < d; k++) m[k] = h[k]! + tmp[k]!;
    const maxC = matVec16(net.Wc, C, m, this.zc);
    logSoftmax(this.zc, C, maxC, this.lc, this.pc);
    const maxS = matVec16(net.Ws, S, m, this.zs);
    logSoftmax(this.zs, S, maxS, this.ls, this.ps);
    let tail = 0;
    for (let s = L; s < S; s++) tail += this.ps[s]!;
    const pLast = this.pc[C - 1]!;
    const pt = pLast * tail;
    this.pLast = pLast;
    this.tail = tail;
    this.zp = 1 - pt;
    this.logZ = Math.log1p(-pt);
  }

  /** log p(id) of the next token (after {@link push}); `id` must be a valid id. */
  logprob(id: number): number {
    const S = this.net.f.classSize;
    const c = Math.floor(id / S);
    return this.lc[c]! + this.ls[id - c * S]! - this.logZ;
  }

  /**
   * Backward pass of this position for a loss whose derivative w.r.t. log p(targets[start + q]) is
   * coefs[q] (q < k): accumulates dLoss/dW_eff into the modules' `gEff`.
   */
  backward(targets: Int32Array, start: number, coefs: Float64Array, k: number): void {
    const net = this.net;
    const d = HIDDEN_SIZE;
    const { classSize: S, numClasses: C, lastClassSize: L } = net.f;
    let G = 0;
    for (let q = 0; q < k; q++) G += coefs[q]!;
    // d log p(id)/dz = onehot − marginal of the renormalised joint, for the class and the slot factor.
    const dzc = this.#dzc;
    const dzs = this.#dzs;
    const pc = this.pc;
    const ps = this.ps;
    const gq = -G / this.zp;
    for (let c = 0; c < C - 1; c++) dzc[c] = gq * pc[c]!;
    dzc[C - 1] = gq * (pc[C - 1]! * (1 - this.tail));
    for (let s = 0; s < L; s++) dzs[s] = gq * ps[s]!;
    const tailMass = 1 - this.pLast;
    for (let s = L; s < S; s++) dzs[s] = gq * (ps[s]! * tailMass);
    for (let q = 0; q < k; q++) {
      const id = targets[start + q]!;
      const g = coefs[q]!;
      const c = Math.floor(id / S);
      dzc[c] = dzc[c]! + g;
      dzs[id - c * S] = dzs[id - c * S]! + g;
    }
    const m = this.m;
    if (net.classHead) outerAcc16(net.classHead.gEff, C, dzc, m);
    if (net.slotHead) outerAcc16(net.slotHead.gEff, S, dzs, m);
    const gA = net.attn?.gEff;
    const gM = net.mlp?.gEff;
    if (gA === undefined && gM === undefined) return;
    const dm = this.#dm;
    const du = this.#du;
    const dh = this.#dh;
    const tmp = this.#tmp;
    matTVec16(net.Wc, C, dzc, dm); // dm = W_classᵀ · dzc + W_slotᵀ · dzs
    matTVec16(net.Ws, S, dzs, tmp);
    for (let i = 0; i < d; i++) dm[i] = dm[i]! + tmp[i]!;
    matTVec16(net.base.w2, d, dm, tmp); // du = (W2ᵀ · dm) ⊙ [u > 0]
    for (let i = 0; i < d; i++) du[i] = this.u[i]! > 0 ? tmp[i]! : 0;
    if (gM !== undefined) outerAcc16(gM, d, du, this.h);
    if (gA !== undefined) {
      matTVec16(net.Wm, d, du, tmp); // dh = dm + W_mlpᵀ · du
      for (let i = 0; i < d; i++) dh[i] = dm[i]! + tmp[i]!;
      outerAcc16(gA, d, dh, this.a);
    }
  }
}
