/**
 * The five losses of the tiny model (PROTOCOL.md §11, decision 14): each loss's value against a direct
 * computation from the returned logprobs, its gradients against finite differences, the loss_fn_config and
 * per-datum clip inputs, the (N, K) form of cross_entropy, forward_only, and typed-array / CSR inputs.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ModelInputError,
  createTinyModel,
  parseSafetensors,
  prepareBatch,
  promptLogprobs,
  writeSafetensors,
  type Datum,
  type LossFn,
  type SafetensorsTensor,
  type TinyLoraModel,
  type TinyModelOptions,
} from "../../src/server/model/index.js";

const V = 1000;
const OPTS: TinyModelOptions = {
  baseModel: "loss-test-base",
  rank: 3,
  seed: 4,
  trainAttn: true,
  trainMlp: true,
  trainUnembed: true,
  vocabSize: V,
};
const ADAM = { learning_rate: 0.01, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0, grad_clip_norm: 0 };

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

const f32 = (data: number[], shape = [data.length]) => ({ data, dtype: "float32" as const, shape });
const i64 = (data: number[], shape = [data.length]) => ({ data, dtype: "int64" as const, shape });

/** A model whose LoRA tensors (B too) are random, so every gradient path is live. */
function randomModel(seed = 21): TinyLoraModel {
  const model = createTinyModel(OPTS);
  const r = rng(seed);
  const { tensors, metadata } = parseSafetensors(model.exportWeights());
  const next = new Map<string, SafetensorsTensor>();
  for (const [name, t] of tensors) next.set(name, { shape: t.shape, data: Float64Array.from(t.data, () => (r() * 2 - 1) * 0.12) });
  model.importWeights(writeSafetensors(next, metadata));
  return model;
}

const SEQS = [
  [5, 17, 200, 3, 3, 999, 995],
  [250, 0, 42, 42, 7, 8, 9, 128, 64, 993],
];

/** Datums for `lossFn`: sampler logprobs q = lp + δ (δ in ±0.5, so ratios straddle the PPO clip range). */
function lossData(model: TinyLoraModel, lossFn: LossFn, seed = 5): Datum[] {
  const r = rng(seed);
  const base = SEQS.map((s) => ({
    model_input: { chunks: [{ type: "encoded_text" as const, tokens: s.slice(0, -1) }] },
    loss_fn_inputs: { target_tokens: i64(s.slice(1)), weights: f32(s.slice(1).map(() => 1)) },
  }));
  if (lossFn === "cross_entropy") {
    return base.map((d) => ({
      ...d,
      loss_fn_inputs: { ...d.loss_fn_inputs, weights: f32(d.loss_fn_inputs.weights.data.map(() => r() * 2 - 0.5)) },
    }));
  }
  const lps = model.forward(base, "cross_entropy").loss_fn_outputs.map((o) => o.logprobs!.data);
  return base.map((d, i) => ({
    model_input: d.model_input,
    loss_fn_inputs: {
      target_tokens: d.loss_fn_inputs.target_tokens,
      logprobs: f32(lps[i]!.map((lp) => lp + (r() - 0.5))),
      advantages: f32(lps[i]!.map(() => r() * 2 - 1)),
    },
  }));
}

/** The loss computed directly from the returned logprobs (§11 formulas). */
function directLoss(lossFn: LossFn, data: Datum[], logprobs: number[][], cfg: Record<string, number> = {}): number {
  let total = 0;
  data.forEach((d, i) => {
    const inp = d.loss_fn_inputs as unknown as Record<string, { data: number[] }>;
    logprobs[i]!.forEach((lp, t) => {
      const q = inp.logprobs?.data[t] ?? 0;
      const a = inp.advantages?.data[t] ?? 0;
      const r = Math.exp(lp - q);
      const lo = inp.clip_low_threshold?.data[t] ?? cfg.clip_low_threshold ?? (lossFn === "ppo" ? 0.8 : 0);
      const hi = inp.clip_high_threshold?.data[t] ?? cfg.clip_high_threshold ?? (lossFn === "ppo" ? 1.2 : 4);
      const clamp = Math.min(Math.max(r, lo), hi);
      const beta = cfg.beta ?? 0.05;
      if (lossFn === "cross_entropy") total += -inp.weights!.data[t]! * lp;
      else if (lossFn === "importance_sampling") total += -r * a;
      else if (lossFn === "ppo") total += -Math.min(r * a, clamp * a);
      else if (lossFn === "cispo") total += -clamp * lp * a;
      else total += -(lp * a - 0.5 * beta * (lp - q) ** 2);
    });
  });
  return total;
}

const LOSSES: LossFn[] = ["cross_entropy", "importance_sampling", "ppo", "cispo", "dro"];

for (const lossFn of LOSSES) {
  test(`${lossFn}: loss:sum matches the formula on the returned logprobs, and gradients match finite differences`, () => {
    const model = randomModel();
    const data = lossData(model, lossFn);
    const out = model.forwardBackward(data, lossFn);
    const lps = out.loss_fn_outputs.map((o) => o.logprobs!.data);
    assert.deepEqual(
      lps.map((l) => l.length),
      SEQS.map((s) => s.length - 1),
    );
    const direct = directLoss(lossFn, data, lps);
    const loss = out.metrics["loss:sum"]!;
    // logprobs travel as float32 (relative error 6e-8 on |lp| <= 10): 1e-4 absolute covers it.
    assert.ok(Math.abs(loss - direct) < 1e-4 * (1 + Math.abs(direct)), `loss ${loss} vs direct ${direct}`);
    if (lossFn === "ppo") {
      // the data exercises both branches of the min
      const ratios = data.flatMap((d, i) => lps[i]!.map((lp, t) => Math.exp(lp - (d.loss_fn_inputs.logprobs!.data as number[])[t]!)));
      assert.ok(ratios.some((r) => r < 0.8 || r > 1.2) && ratios.some((r) => r > 0.8 && r < 1.2));
    }

    const grads = model.gradients();
    const weights = parseSafetensors(model.exportWeights());
    const r = rng(99);
    const eps = 1e-5;
    // cispo's clip factor is held constant (no gradient through it): its gradient is that of the surrogate
    // Σ −c·A·lp with c fixed at the current weights, i.e. cross_entropy with weights c·A.
    const exact = SEQS.map((seq) => promptLogprobs(model, seq).slice(1) as number[]); // float64 logprobs
    const probeLoss: [Datum[], LossFn] =
      lossFn === "cispo"
        ? [
            data.map((d, i) => ({
              model_input: d.model_input,
              loss_fn_inputs: {
                target_tokens: d.loss_fn_inputs.target_tokens,
                weights: f32(
                  exact[i]!.map((lp, t) => {
                    const q = (d.loss_fn_inputs.logprobs!.data as number[])[t]!;
                    const a = (d.loss_fn_inputs.advantages!.data as number[])[t]!;
                    return Math.min(Math.max(Math.exp(lp - q), 0), 4) * a;
                  }),
                ),
              },
            })),
            "cross_entropy",
          ]
        : [data, lossFn];
    let nonzero = 0;
    for (const [name, g] of grads) {
      const t = weights.tensors.get(name)!;
      // random coordinates, plus the last row of each B: the last class (partial) and a slot only full classes have
      const coords = [0, 1, 2].map(() => Math.floor(r() * t.data.length));
      if (name.includes("lora_B")) coords.push(t.data.length - 1);
      for (const idx of coords) {
        const perturbed = (delta: number) => {
          const probe = createTinyModel(OPTS);
          const tensors = new Map(weights.tensors);
          const data2 = Float64Array.from(t.data);
          data2[idx] = data2[idx]! + delta;
          tensors.set(name, { shape: t.shape, data: data2 });
          probe.importWeights(writeSafetensors(tensors, weights.metadata));
          return probe.forward(...probeLoss).metrics["loss:sum"]!;
        };
        const numeric = (perturbed(eps) - perturbed(-eps)) / (2 * eps);
        const analytic = g[idx]!;
        const rel = Math.abs(analytic - numeric) / Math.max(Math.abs(analytic), Math.abs(numeric), 1e-3);
        assert.ok(rel < 1e-5, `${name}[${idx}]: analytic ${analytic} vs numeric ${numeric} (rel ${rel})`);
      }
      if (g.some((v) => v !== 0)) nonzero++;
    }
    assert.equal(nonzero, grads.size, "every LoRA tensor gets a gradient");
  });
}

test("loss_fn_config: defaults (ppo 0.8/1.2, cispo 0/4, dro beta 0.05), overrides, and per-datum clip inputs win", () => {
  const model = randomModel();
  const outs = (lossFn: LossFn, data: Datum[], cfg?: Record<string, number>) => {
    const m = randomModel();
    const out = m.forwardBackward(data, lossFn, cfg);
    return { loss: out.metrics["loss:sum"]!, grads: m.gradients(), lps: out.loss_fn_outputs.map((o) => o.logprobs!.data) };
  };
  for (const lossFn of ["ppo", "cispo", "dro"] as const) {
    const data = lossData(model, lossFn);
    const defaults = outs(lossFn, data);
    const explicit = outs(
      lossFn,
      data,
      lossFn === "dro"
        ? { beta: 0.05 }
        : lossFn === "ppo"
          ? { clip_low_threshold: 0.8, clip_high_threshold: 1.2 }
          : { clip_low_threshold: 0, clip_high_threshold: 4 },
    );
    assert.equal(defaults.loss, explicit.loss, `${lossFn} defaults`);
    const cfg: Record<string, number> = lossFn === "dro" ? { beta: 0.7 } : { clip_low_threshold: 0.95, clip_high_threshold: 1.05 };
    const changed = outs(lossFn, data, cfg);
    assert.notEqual(changed.loss, defaults.loss, `${lossFn} config changes the loss`);
    const direct = directLoss(lossFn, data, changed.lps, cfg);
    assert.ok(Math.abs(changed.loss - direct) < 1e-4 * (1 + Math.abs(direct)));
  }
  // Per-token clip inputs of a datum override the config for that datum.
  for (const lossFn of ["ppo", "cispo"] as const) {
    const data = lossData(model, lossFn);
    const viaConfig = outs(lossFn, data, { clip_low_threshold: 0.9, clip_high_threshold: 1.1 });
    const withInputs = data.map((d) => {
      const n = d.loss_fn_inputs.target_tokens.data.length;
      return {
        ...d,
        loss_fn_inputs: {
          ...d.loss_fn_inputs,
          clip_low_threshold: f32(new Array(n).fill(0.9)),
          clip_high_threshold: f32(new Array(n).fill(1.1)),
        },
      };
    });
    const viaInputs = outs(lossFn, withInputs, { clip_low_threshold: 0.5, clip_high_threshold: 3 });
    assert.equal(viaInputs.loss, viaConfig.loss, `${lossFn}: inputs override config`);
    for (const [name, g] of viaConfig.grads) assert.deepEqual(viaInputs.grads.get(name), g, name);
  }
});

test("the RL losses ignore weights", () => {
  for (const lossFn of ["importance_sampling", "ppo", "cispo", "dro"] as const) {
    const data = lossData(randomModel(), lossFn);
    const weighted = data.map((d) => ({
      ...d,
      loss_fn_inputs: { ...d.loss_fn_inputs, weights: f32(Array.from(d.loss_fn_inputs.target_tokens.data, () => 0)) },
    }));
    const a = randomModel();
    const b = randomModel();
    assert.deepEqual(a.forwardBackward(data, lossFn), b.forwardBackward(weighted, lossFn));
    assert.deepEqual(a.gradients(), b.gradients());
  }
});

test("cross_entropy (N, K): logprobs (N, K) and the loss and gradients of K separate (N,) datums", () => {
  const tokens = [5, 17, 200, 3];
  const t1 = [17, 200, 3, 999];
  const t2 = [995, 1, 2, 3];
  const w1 = [1, 0.5, 0, 2];
  const w2 = [0.25, 1, 1, -1];
  const nk: Datum = {
    model_input: { chunks: [{ type: "encoded_text", tokens }] },
    loss_fn_inputs: {
      target_tokens: i64(
        t1.flatMap((t, i) => [t, t2[i]!]),
        [4, 2],
      ),
      weights: f32(
        w1.flatMap((w, i) => [w, w2[i]!]),
        [4, 2],
      ),
    },
  };
  const single = (t: number[], w: number[]): Datum => ({
    model_input: nk.model_input,
    loss_fn_inputs: { target_tokens: i64(t), weights: f32(w) },
  });
  const a = randomModel();
  const b = randomModel();
  const outNk = a.forwardBackward([nk], "cross_entropy");
  const outSep = b.forwardBackward([single(t1, w1), single(t2, w2)], "cross_entropy");
  const lp = outNk.loss_fn_outputs[0]!.logprobs!;
  assert.deepEqual(lp.shape, [4, 2]);
  assert.deepEqual(
    lp.data,
    outSep.loss_fn_outputs[0]!.logprobs!.data.flatMap((v, i) => [v, outSep.loss_fn_outputs[1]!.logprobs!.data[i]!]),
  );
  assert.ok(Math.abs(outNk.metrics["loss:sum"]! - outSep.metrics["loss:sum"]!) < 1e-12);
  for (const [name, g] of a.gradients()) {
    const h = b.gradients().get(name)!;
    for (let i = 0; i < g.length; i++) assert.ok(Math.abs(g[i]! - h[i]!) <= 1e-12 * (1 + Math.abs(h[i]!)), `${name}[${i}]`);
  }
});

test("forward_only accumulates nothing: gradients stay zero and a later optimStep is the same as a bare one", () => {
  for (const lossFn of LOSSES) {
    const a = randomModel();
    const b = randomModel();
    const data = lossData(a, lossFn);
    const fwd = a.forward(data, lossFn);
    assert.deepEqual(a.run(prepareBatch(data, lossFn, undefined, V), { forwardOnly: true }), fwd);
    for (const g of a.gradients().values())
      assert.ok(
        g.every((v) => v === 0),
        `${lossFn}: no gradient`,
      );
    a.optimStep(ADAM);
    b.optimStep(ADAM);
    assert.ok(a.exportWeights().equals(b.exportWeights()), `${lossFn}: forward then optimStep == optimStep`);
    // and forward reports what forwardBackward reports
    assert.deepEqual(randomModel().forwardBackward(data, lossFn), fwd);
  }
});

test("typed arrays (Int32Array, BigInt64Array, Float32Array) and CSR tensors give the same result as plain arrays", () => {
  const plain: Datum = {
    model_input: {
      chunks: [
        { type: "encoded_text", tokens: [5, 17, 200] },
        { type: "encoded_text", tokens: [3] },
      ],
    },
    loss_fn_inputs: { target_tokens: i64([17, 200, 3, 999]), weights: f32([1, 0, 0.5, 1]) },
  };
  const typed: Datum = {
    model_input: {
      chunks: [
        { type: "encoded_text", tokens: Int32Array.from([5, 17, 200]) },
        { type: "encoded_text", tokens: Int32Array.from([3]) },
      ],
    },
    loss_fn_inputs: {
      target_tokens: { data: BigInt64Array.from([17n, 200n, 3n, 999n]), dtype: "int64" },
      weights: { data: Float32Array.from([1, 0, 0.5, 1]), dtype: "float32" },
    },
  };
  // (N, K) = (4, 2) weights as CSR: only the first column is non-zero.
  const nkDense: Datum = {
    model_input: plain.model_input,
    loss_fn_inputs: { target_tokens: i64([17, 1, 200, 1, 3, 1, 999, 1], [4, 2]), weights: f32([1, 0, 0, 0, 0.5, 0, 1, 0], [4, 2]) },
  };
  const nkCsr: Datum = {
    model_input: plain.model_input,
    loss_fn_inputs: {
      target_tokens: nkDense.loss_fn_inputs.target_tokens,
      weights: { data: [1, 0.5, 1], dtype: "float32", shape: [4, 2], sparse_crow_indices: [0, 1, 1, 2, 3], sparse_col_indices: [0, 0, 0] },
    },
  };
  const m = randomModel();
  assert.deepEqual(m.forward([typed], "cross_entropy"), m.forward([plain], "cross_entropy"));
  assert.deepEqual(m.forward([nkCsr], "cross_entropy"), m.forward([nkDense], "cross_entropy"));
});

test("loss inputs are checked with errors naming the field", () => {
  const m = randomModel();
  const fails = (fn: () => unknown, message: RegExp, field: string) =>
    assert.throws(fn, (err: unknown) => {
      assert.ok(err instanceof ModelInputError, String(err));
      assert.match(err.message, message);
      assert.equal(err.field, field);
      return true;
    });
  const base = lossData(m, "ppo");
  const noWeights: Datum = { model_input: base[0]!.model_input, loss_fn_inputs: { target_tokens: base[0]!.loss_fn_inputs.target_tokens } };
  fails(
    () => m.forwardBackward([noWeights], "cross_entropy"),
    /^data\[0\]\.loss_fn_inputs\.weights: is required for cross_entropy/,
    "data[0].loss_fn_inputs.weights",
  );
  const noAdv = base.map((d) => ({
    ...d,
    loss_fn_inputs: { target_tokens: d.loss_fn_inputs.target_tokens, logprobs: d.loss_fn_inputs.logprobs! },
  }));
  fails(
    () => m.forwardBackward(noAdv, "ppo"),
    /^data\[0\]\.loss_fn_inputs\.advantages: is required for ppo/,
    "data[0].loss_fn_inputs.advantages",
  );
  fails(
    () => m.forwardBackward(base, "importance_sampling", { beta: 1 }),
    /^loss_fn_config\.beta: not a parameter of importance_sampling/,
    "loss_fn_config.beta",
  );
  fails(
    () => m.forwardBackward(base, "ppo", { clip_low_threshold: 1.3 }),
    /^loss_fn_config\.clip_high_threshold: must be >= clip_low_threshold/,
    "loss_fn_config.clip_high_threshold",
  );
  fails(() => m.forwardBackward(base, "dro", { beta: -1 }), /^loss_fn_config\.beta: must be >= 0/, "loss_fn_config.beta");
  fails(
    () => m.forwardBackward(base, "dro", { beta: Number.NaN }),
    /^loss_fn_config\.beta: must be a finite number/,
    "loss_fn_config.beta",
  );
  const shortAdv = [{ ...base[0]!, loss_fn_inputs: { ...base[0]!.loss_fn_inputs, advantages: f32([1]) } }];
  fails(
    () => m.forwardBackward(shortAdv, "cispo"),
    /^data\[0\]\.loss_fn_inputs\.advantages: shape \[1\] does not match model_input length 6/,
    "data[0].loss_fn_inputs.advantages",
  );
  const badClip = [{ ...base[0]!, loss_fn_inputs: { ...base[0]!.loss_fn_inputs, clip_high_threshold: f32([2, 2, 2, 0.1, 2, 2]) } }];
  fails(
    () => m.forwardBackward(badClip, "ppo"),
    /^data\[0\]\.loss_fn_inputs\.clip_high_threshold\.data\[3\]: 0\.1 is below the low threshold 0\.8/,
    "data[0].loss_fn_inputs.clip_high_threshold.data[3]",
  );
  const nk = [{ ...base[0]!, loss_fn_inputs: { ...base[0]!.loss_fn_inputs, target_tokens: i64(new Array(12).fill(1), [6, 2]) } }];
  fails(
    () => m.forwardBackward(nk, "ppo"),
    /^data\[0\]\.loss_fn_inputs\.target_tokens: shape \[6, 2\]: ppo takes one target per position/,
    "data[0].loss_fn_inputs.target_tokens",
  );
  for (const g of m.gradients().values())
    assert.ok(
      g.every((v) => v === 0),
      "failed calls accumulate nothing",
    );
});
