import { test } from "node:test";
import assert from "node:assert/strict";
import {
  HIDDEN_SIZE,
  ModelInputError,
  adapterConfigJson,
  factorize,
  loadTinyModel,
  nextTokenLogprobs,
  vocabForBaseModel,
  WEIGHTS_FORMAT,
  createTinyModel,
  parseSafetensors,
  readWeightsConfig,
  writeSafetensors,
  type AdamParams,
  type Datum,
  type SafetensorsTensor,
  type TinyLoraModel,
  type TinyModelOptions,
} from "../../src/server/model/index.js";

/** The vocabulary of most tests: small (fast finite differences) with a partial last class (32 × 32, L = 8). */
const V = 1000;

// ---------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------

/** Small deterministic PRNG for test data (independent of the module's internals). */
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

function datum(tokens: number[], targets: number[], weights: number[] = targets.map(() => 1)): Datum {
  return {
    model_input: { chunks: [{ type: "encoded_text", tokens }] },
    loss_fn_inputs: {
      target_tokens: { data: targets, dtype: "int64", shape: [targets.length] },
      weights: { data: weights, dtype: "float32", shape: [weights.length] },
    },
  };
}

/** A batch of `count` next-token-prediction sequences of length `len` with a learnable pattern. */
function makeBatch(count: number, len: number, seed = 7): Datum[] {
  const r = rng(seed);
  const out: Datum[] = [];
  for (let b = 0; b < count; b++) {
    const seq = Array.from({ length: len + 1 }, (_, i) => (i * 7 + b * 13 + Math.floor(r() * 3)) % V);
    const weights = seq.slice(1).map((_, i) => (i < 2 ? 0 : 1)); // mask a short "prompt"
    // Split the input into two chunks to exercise chunk concatenation.
    const input = seq.slice(0, len);
    out.push({
      model_input: {
        chunks: [
          { type: "encoded_text", tokens: input.slice(0, 3) },
          { type: "encoded_text", tokens: input.slice(3) },
        ],
      },
      loss_fn_inputs: {
        target_tokens: { data: seq.slice(1), dtype: "int64", shape: [len] },
        weights: { data: weights, dtype: "float32", shape: [len] },
      },
    });
  }
  return out;
}

const ALL: TinyModelOptions = { baseModel: "tiny-base-v1", rank: 8, trainAttn: true, trainMlp: true, trainUnembed: true, vocabSize: V };

const ADAM: AdamParams = {
  learning_rate: 1e-2,
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  weight_decay: 0.01,
  grad_clip_norm: 5,
};

function step(model: TinyLoraModel, batch: Datum[], adam: AdamParams = ADAM): number {
  const loss = model.forwardBackward(batch, "cross_entropy").metrics["loss:sum"];
  assert.equal(typeof loss, "number");
  model.optimStep(adam);
  return loss!;
}

function lossOf(model: TinyLoraModel, batch: Datum[]): number {
  return model.forward(batch, "cross_entropy").metrics["loss:sum"]!;
}

/** Replaces the model's adapter tensors with `fn(name, tensor)` via a safetensors round trip. */
function setWeights(model: TinyLoraModel, fn: (name: string, t: SafetensorsTensor) => Float64Array): void {
  const { tensors, metadata } = parseSafetensors(model.exportWeights());
  const next = new Map<string, SafetensorsTensor>();
  for (const [name, t] of tensors) next.set(name, { shape: t.shape, data: fn(name, t) });
  model.importWeights(writeSafetensors(next, metadata));
}

function assertThrowsInput(fn: () => unknown, pattern: RegExp | string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ModelInputError, `expected ModelInputError, got ${String(err)}`);
    if (typeof pattern === "string") assert.equal(err.message, pattern);
    else assert.match(err.message, pattern);
    return true;
  });
}

// ---------------------------------------------------------------------------------------
// tests
// ---------------------------------------------------------------------------------------

test("vocabularies: real sizes per base model family, factored into about sqrt(V) classes x slots", () => {
  assert.equal(HIDDEN_SIZE, 16);
  const cases: Array<[string, number, number]> = [
    ["Qwen/Qwen3-8B", 151_936, 151_645],
    ["Qwen/Qwen3-8B-Base", 151_936, 151_645],
    ["Qwen/Qwen3-30B-A3B", 151_936, 151_645],
    ["Qwen/Qwen3-4B-Instruct-2507", 151_936, 151_645],
    ["meta-llama/Llama-3.2-1B", 128_256, 128_009],
    ["meta-llama/Llama-3.2-3B", 128_256, 128_009],
    ["meta-llama/Llama-3.1-8B", 128_256, 128_009],
    ["openai/gpt-oss-20b", 201_088, 200_002],
  ];
  for (const [name, size, eos] of cases) {
    const info = vocabForBaseModel(name);
    assert.equal(info.vocabSize, size, name);
    assert.equal(info.eosTokenIds[0], eos, name);
    assert.equal(createTinyModel({ ...ALL, baseModel: name, vocabSize: undefined }).config.vocabSize, size, name);
  }
  assert.deepEqual(factorize(151_936), { vocabSize: 151_936, classSize: 390, numClasses: 390, lastClassSize: 226 });
  assert.deepEqual(factorize(128_256), { vocabSize: 128_256, classSize: 359, numClasses: 358, lastClassSize: 93 });
  assert.deepEqual(factorize(V), { vocabSize: V, classSize: 32, numClasses: 32, lastClassSize: 8 });
  for (const size of [2, 3, 17, 1000, 151_936, 201_088]) {
    const f = factorize(size);
    assert.ok(f.lastClassSize >= 1 && f.lastClassSize <= f.classSize && (f.numClasses - 1) * f.classSize + f.lastClassSize === size);
  }
});

test("the output is a proper distribution over every id of the vocabulary (Qwen3 size too)", () => {
  for (const opts of [ALL, { ...ALL, baseModel: "Qwen/Qwen3-8B", vocabSize: undefined }]) {
    const model = createTinyModel(opts);
    const r = rng(3);
    setWeights(model, (_n, t) => Float64Array.from(t.data, () => (r() * 2 - 1) * 0.3));
    const n = model.config.vocabSize;
    const lp = nextTokenLogprobs(model, [1, n - 1, 5]);
    assert.equal(lp.length, n);
    let total = 0;
    for (let i = 0; i < n; i++) {
      assert.ok(Number.isFinite(lp[i]!) && lp[i]! < 0, `id ${i}`);
      total += Math.exp(lp[i]!);
    }
    assert.ok(Math.abs(total - 1) < 1e-9, `probabilities sum to ${total}`);
  }
});

test("real token ids: trained on one sequence of Qwen3 ids above 100000, the argmax next token reproduces it", () => {
  const model = createTinyModel({ baseModel: "Qwen/Qwen3-8B", rank: 8, trainAttn: true, trainMlp: true, trainUnembed: true });
  const seq = [100_123, 151_000, 120_456, 100_001, 140_000, 133_333, 101_010, 151_935, 100_777];
  const data = [datum(seq.slice(0, -1), seq.slice(1))];
  const adam = { ...ADAM, learning_rate: 0.02, weight_decay: 0, grad_clip_norm: 0 };
  const first = lossOf(model, data);
  for (let i = 0; i < 40; i++) step(model, data, adam);
  const final = lossOf(model, data);
  assert.ok(first > 8 * 10 && final < 0.05, `loss ${first} -> ${final}`);
  for (let i = 1; i < seq.length; i++) {
    const lp = nextTokenLogprobs(model, seq.slice(0, i));
    let best = 0;
    for (let id = 1; id < lp.length; id++) if (lp[id]! > lp[best]!) best = id;
    assert.equal(best, seq[i], `position ${i}`);
    assert.ok(Math.exp(lp[best]!) > 0.9, `most of the mass on ${best}: ${Math.exp(lp[best]!)}`);
  }
  // The checkpoint records the vocabulary and stays small; it loads back bit for bit.
  const weights = model.exportWeights();
  const meta = parseSafetensors(weights).metadata;
  assert.equal(meta.vocab_size, "151936");
  assert.equal(meta.format, WEIGHTS_FORMAT);
  assert.ok(weights.length < 64 * 1024, `${weights.length} bytes at rank 8`);
  assert.ok(loadTinyModel(weights).exportWeights().equals(weights));
  assert.deepEqual(loadTinyModel(weights).forward(data, "cross_entropy"), model.forward(data, "cross_entropy"));
});

test("training is deterministic: identical losses and identical exported bytes", () => {
  const batch = makeBatch(4, 16);
  const m1 = createTinyModel({ ...ALL, seed: 3 });
  const m2 = createTinyModel({ ...ALL, seed: 3 });
  const l1: number[] = [];
  const l2: number[] = [];
  for (let i = 0; i < 5; i++) {
    l1.push(step(m1, batch));
    l2.push(step(m2, batch));
  }
  for (let i = 0; i < 5; i++) assert.equal(l1[i], l2[i], `loss ${i}`);
  assert.ok(m1.exportWeights().equals(m2.exportWeights()));
  assert.ok(m1.exportOptimizer().equals(m2.exportOptimizer()));
  assert.equal(m1.optimizerStep, 5);

  // Different seeds / base models give different models.
  const m3 = createTinyModel({ ...ALL, seed: 4 });
  assert.ok(!m3.exportWeights().equals(createTinyModel({ ...ALL, seed: 3 }).exportWeights()));
  const other = createTinyModel({ ...ALL, baseModel: "another-base" });
  assert.notEqual(lossOf(other, batch), lossOf(createTinyModel(ALL), batch));
});

test("fresh adapters (B = 0) leave the base model unchanged", () => {
  const batch = makeBatch(2, 8);
  const a = createTinyModel({ ...ALL, seed: 1 });
  const b = createTinyModel({ ...ALL, seed: 2, rank: 4 });
  const c = createTinyModel({ ...ALL, trainAttn: false, trainMlp: false });
  assert.equal(lossOf(a, batch), lossOf(b, batch));
  assert.equal(lossOf(a, batch), lossOf(c, batch));
});

test("forward/forwardBackward outputs: float32 logprobs and loss:sum", () => {
  const model = createTinyModel(ALL);
  const data = [datum([1, 2, 3], [2, 3, 4], [1, 0.5, 0]), datum([9, 8], [8, 7])];
  const out = model.forwardBackward(data, "cross_entropy");
  assert.equal(out.loss_fn_output_type, "TensorData");
  assert.equal(out.loss_fn_outputs.length, 2);
  let total = 0;
  for (const [i, o] of out.loss_fn_outputs.entries()) {
    const n = i === 0 ? 3 : 2;
    const lp = o.logprobs!;
    assert.deepEqual(Object.keys(o), ["logprobs"]);
    assert.equal(lp.dtype, "float32");
    assert.deepEqual(lp.shape, [n]);
    const w = i === 0 ? [1, 0.5, 0] : [1, 1];
    for (let k = 0; k < n; k++) {
      assert.ok(lp.data[k]! < 0 && Number.isFinite(lp.data[k]!));
      assert.equal(lp.data[k], Math.fround(lp.data[k]!), "a float32 value");
      total += w[k]! * -lp.data[k]!;
    }
  }
  assert.ok(Math.abs(out.metrics["loss:sum"]! - total) < 1e-5 * total);
  // forward gives the same numbers and does not touch the gradients
  const fwd = createTinyModel(ALL).forward(data, "cross_entropy");
  assert.deepEqual(fwd, out);
  // an untrained model is close to uniform: logprob ≈ -log(V)
  assert.ok(Math.abs(out.loss_fn_outputs[1]!.logprobs!.data[0]! + Math.log(V)) < 3);
});

test("gradients match finite differences for every LoRA tensor", () => {
  const model = createTinyModel({ ...ALL, rank: 3, seed: 11 });
  const r = rng(99);
  // B != 0 so that every gradient path is exercised; larger A/B to make relu gating matter.
  setWeights(model, (_name, t) => Float64Array.from(t.data, () => (r() * 2 - 1) * 0.4));
  const batch = [
    datum([5, 17, 200, 3, 3, 999], [17, 200, 3, 3, 999, 995], [0, 1, 0.5, 2, 1, 1]),
    datum([250, 0, 42, 42, 7, 8, 9, 128, 64], [0, 42, 42, 7, 8, 9, 128, 64, 993], [1, 1, 1, 1, 0, 1, 1, 1, 1.5]),
    datum([77], [78]),
  ];
  model.forwardBackward(batch, "cross_entropy");
  const grads = model.gradients();
  const weights = parseSafetensors(model.exportWeights());
  assert.deepEqual([...grads.keys()], [...weights.tensors.keys()]);
  assert.equal(grads.size, 8);

  const eps = 1e-5;
  let checked = 0;
  for (const [name, g] of grads) {
    const t = weights.tensors.get(name)!;
    const coords = new Set<number>();
    while (coords.size < 5) coords.add(Math.floor(r() * t.data.length));
    for (const idx of coords) {
      const perturbed = (delta: number) => {
        const probe = createTinyModel({ ...ALL, rank: 3, seed: 11 });
        const tensors = new Map(weights.tensors);
        const data = Float64Array.from(t.data);
        data[idx] = data[idx]! + delta;
        tensors.set(name, { shape: t.shape, data });
        probe.importWeights(writeSafetensors(tensors, weights.metadata));
        return lossOf(probe, batch);
      };
      const numeric = (perturbed(eps) - perturbed(-eps)) / (2 * eps);
      const analytic = g[idx]!;
      const rel = Math.abs(analytic - numeric) / Math.max(Math.abs(analytic), Math.abs(numeric), 1e-3);
      assert.ok(rel < 1e-5, `${name}[${idx}]: analytic ${analytic} vs numeric ${numeric} (rel ${rel})`);
      checked++;
    }
    assert.ok(
      g.some((v) => v !== 0),
      `${name} has a non-zero gradient`,
    );
  }
  assert.equal(checked, 40);
});

test("gradients accumulate across forwardBackward calls and forward does not accumulate", () => {
  const batch = makeBatch(2, 10);
  const model = createTinyModel(ALL);
  model.forward(batch, "cross_entropy");
  for (const g of model.gradients().values()) assert.ok(g.every((v) => v === 0));
  model.forwardBackward(batch, "cross_entropy");
  const once = model.gradients();
  model.forwardBackward(batch, "cross_entropy");
  model.forward(batch, "cross_entropy");
  const twice = model.gradients();
  for (const [name, g] of once) {
    const g2 = twice.get(name)!;
    for (let i = 0; i < g.length; i++) assert.equal(g2[i], 2 * g[i]!, `${name}[${i}]`);
  }
  model.optimStep(ADAM);
  for (const g of model.gradients().values())
    assert.ok(
      g.every((v) => v === 0),
      "optimStep zeroes grads",
    );
});

test("optimStep implements AdamW with bias correction and clipping", () => {
  const batch = makeBatch(2, 6);
  const adam: AdamParams = { learning_rate: 0.05, beta1: 0.8, beta2: 0.9, eps: 1e-6, weight_decay: 0.1, grad_clip_norm: 0.5 };
  const model = createTinyModel({ ...ALL, rank: 2 });
  const r = rng(5);
  setWeights(model, (_n, t) => Float64Array.from(t.data, () => (r() * 2 - 1) * 0.3));

  // Reference: replay the same two steps with a straightforward implementation.
  const w = new Map([...parseSafetensors(model.exportWeights()).tensors].map(([k, v]) => [k, Float64Array.from(v.data)]));
  const mState = new Map([...w].map(([k, v]) => [k, new Float64Array(v.length)]));
  const vState = new Map([...w].map(([k, v]) => [k, new Float64Array(v.length)]));
  for (let t = 1; t <= 2; t++) {
    model.forwardBackward(batch, "cross_entropy");
    const grads = model.gradients();
    let sq = 0;
    for (const g of grads.values()) for (const x of g) sq += x * x;
    const norm = Math.sqrt(sq);
    const scale = norm > adam.grad_clip_norm ? adam.grad_clip_norm / norm : 1;
    assert.ok(scale < 1, "test exercises clipping");
    for (const [name, p] of w) {
      const g = grads.get(name)!;
      const m = mState.get(name)!;
      const v = vState.get(name)!;
      for (let i = 0; i < p.length; i++) {
        const gi = g[i]! * scale;
        p[i] = p[i]! - adam.learning_rate * adam.weight_decay * p[i]!;
        m[i] = adam.beta1 * m[i]! + (1 - adam.beta1) * gi;
        v[i] = adam.beta2 * v[i]! + (1 - adam.beta2) * gi * gi;
        const mHat = m[i]! / (1 - adam.beta1 ** t);
        const vHat = v[i]! / (1 - adam.beta2 ** t);
        p[i] = p[i]! - (adam.learning_rate * mHat) / (Math.sqrt(vHat) + adam.eps);
      }
    }
    const { metrics } = model.optimStep(adam);
    assert.equal(metrics.grad_norm, norm);
    assert.equal(metrics.learning_rate, adam.learning_rate);
    assert.equal(metrics.step, t);
  }
  const got = parseSafetensors(model.exportWeights()).tensors;
  for (const [name, p] of w) {
    const q = got.get(name)!.data;
    for (let i = 0; i < p.length; i++) {
      assert.ok(Math.abs(p[i]! - q[i]!) <= 1e-12 * Math.max(1, Math.abs(p[i]!)), `${name}[${i}]: ${p[i]} vs ${q[i]}`);
    }
  }
  const opt = parseSafetensors(model.exportOptimizer());
  assert.deepEqual(opt.metadata, { step: "2" });
  assert.equal(opt.tensors.size, 16);
});

test("training reduces the loss on a fixed batch", () => {
  const batch = makeBatch(4, 32);
  const model = createTinyModel(ALL);
  const adam = { ...ADAM, weight_decay: 0, grad_clip_norm: 0 };
  const losses: number[] = [];
  for (let i = 0; i < 30; i++) losses.push(step(model, batch, adam));
  const final = lossOf(model, batch);
  assert.ok(final < 0.5 * losses[0]!, `loss ${losses[0]} -> ${final}`);
  assert.ok(losses[29]! < losses[10]! && losses[10]! < losses[0]!);
});

test("resume: weights+optimizer reproduce training bit for bit; weights only diverge", () => {
  const batch = makeBatch(3, 12, 21);
  const opts = { ...ALL, rank: 4, seed: 5 };
  const original = createTinyModel(opts);
  for (let i = 0; i < 3; i++) step(original, batch);
  const weights = original.exportWeights();
  const optimizer = original.exportOptimizer();
  assert.equal(original.optimizerStep, 3);
  const continued: number[] = [];
  for (let i = 0; i < 5; i++) continued.push(step(original, batch));

  const resumed = createTinyModel(opts);
  resumed.importWeights(weights);
  resumed.importOptimizer(optimizer);
  assert.equal(resumed.optimizerStep, 3);
  const resumedLosses: number[] = [];
  for (let i = 0; i < 5; i++) resumedLosses.push(step(resumed, batch));
  for (let i = 0; i < 5; i++) assert.equal(resumedLosses[i], continued[i], `resumed loss ${i}`);
  assert.ok(resumed.exportWeights().equals(original.exportWeights()));
  assert.ok(resumed.exportOptimizer().equals(original.exportOptimizer()));

  const weightsOnly = createTinyModel(opts);
  weightsOnly.importWeights(weights);
  assert.equal(weightsOnly.optimizerStep, 0);
  const wo: number[] = [];
  for (let i = 0; i < 5; i++) wo.push(step(weightsOnly, batch));
  assert.equal(wo[0], continued[0], "first loss only depends on the weights");
  for (let i = 1; i < 5; i++) assert.notEqual(wo[i], continued[i], `weights-only loss ${i} should diverge`);

  // resetOptimizer makes a resumed model behave like the weights-only one.
  const reset = createTinyModel(opts);
  reset.importWeights(weights);
  reset.importOptimizer(optimizer);
  reset.resetOptimizer();
  assert.equal(reset.optimizerStep, 0);
  for (let i = 0; i < 5; i++) assert.equal(step(reset, batch), wo[i]);
});

test("importWeights clears accumulated gradients", () => {
  const batch = makeBatch(1, 5);
  const model = createTinyModel(ALL);
  const saved = model.exportWeights();
  model.forwardBackward(batch, "cross_entropy");
  assert.ok([...model.gradients().values()].some((g) => g.some((v) => v !== 0)));
  model.importWeights(saved);
  for (const g of model.gradients().values()) assert.ok(g.every((v) => v === 0));
});

test("train_* flags select the adapted modules and rank sets the shapes", () => {
  const noUnembed = createTinyModel({ ...ALL, rank: 5, trainUnembed: false });
  const w = parseSafetensors(noUnembed.exportWeights());
  assert.deepEqual(
    [...w.tensors.keys()],
    [
      "base_model.model.layers.0.self_attn.lora_A.weight",
      "base_model.model.layers.0.self_attn.lora_B.weight",
      "base_model.model.layers.0.mlp.lora_A.weight",
      "base_model.model.layers.0.mlp.lora_B.weight",
    ],
  );
  assert.ok(![...w.tensors.keys()].some((k) => k.includes("lm_head")));
  assert.deepEqual(w.tensors.get("base_model.model.layers.0.self_attn.lora_A.weight")!.shape, [5, HIDDEN_SIZE]);
  assert.deepEqual(w.tensors.get("base_model.model.layers.0.mlp.lora_B.weight")!.shape, [HIDDEN_SIZE, 5]);
  assert.deepEqual(noUnembed.tensorNames, [...w.tensors.keys()]);
  assert.equal(w.metadata.base_model, ALL.baseModel);
  assert.equal(w.metadata.rank, "5");
  assert.equal(w.metadata.train_unembed, "false");

  const unembedOnly = createTinyModel({ ...ALL, rank: 2, trainAttn: false, trainMlp: false });
  const u = parseSafetensors(unembedOnly.exportWeights());
  assert.deepEqual(
    [...u.tensors.keys()],
    [
      "base_model.model.lm_head.class_proj.lora_A.weight",
      "base_model.model.lm_head.class_proj.lora_B.weight",
      "base_model.model.lm_head.slot_proj.lora_A.weight",
      "base_model.model.lm_head.slot_proj.lora_B.weight",
    ],
  );
  assert.deepEqual(u.tensors.get("base_model.model.lm_head.class_proj.lora_B.weight")!.shape, [32, 2]);
  assert.deepEqual(u.tensors.get("base_model.model.lm_head.slot_proj.lora_B.weight")!.shape, [32, 2]);
  // B starts at zero, A does not
  assert.ok(u.tensors.get("base_model.model.lm_head.class_proj.lora_B.weight")!.data.every((v) => v === 0));
  assert.ok(u.tensors.get("base_model.model.lm_head.slot_proj.lora_A.weight")!.data.some((v) => v !== 0));
  // training a single module still works
  const batch = makeBatch(2, 8);
  const before = lossOf(unembedOnly, batch);
  for (let i = 0; i < 5; i++) step(unembedOnly, batch);
  assert.ok(lossOf(unembedOnly, batch) < before);

  assert.deepEqual(createTinyModel({ ...ALL, rank: 3, alpha: 6, seed: 9 }).config, {
    baseModel: ALL.baseModel,
    rank: 3,
    seed: 9,
    alpha: 6,
    trainAttn: true,
    trainMlp: true,
    trainUnembed: true,
    vocabSize: V,
  });
  assert.equal(createTinyModel(ALL).config.alpha, 32);
  assert.equal(createTinyModel(ALL).config.seed, 0);
});

test("createTinyModel validates its options", () => {
  assertThrowsInput(() => createTinyModel({ ...ALL, trainAttn: false, trainMlp: false, trainUnembed: false }), /at least one/);
  for (const rank of [0, 257, 1.5, -1, Number.NaN]) {
    assertThrowsInput(() => createTinyModel({ ...ALL, rank }), /^rank: must be an integer in \[1, 256\]/);
  }
  assert.equal(createTinyModel({ ...ALL, rank: 256 }).config.rank, 256);
  assert.equal(createTinyModel({ ...ALL, rank: 1 }).config.rank, 1);
  assertThrowsInput(() => createTinyModel({ ...ALL, baseModel: "" }), /base_model/);
  assertThrowsInput(() => createTinyModel({ ...ALL, alpha: 0 }), /alpha/);
  assertThrowsInput(() => createTinyModel({ ...ALL, seed: 0.5 }), /seed/);
  assertThrowsInput(() => createTinyModel({ ...ALL, vocabSize: 1 }), /^vocab_size: must be an integer in \[2, /);
});

test("importWeights / importOptimizer reject incompatible checkpoints", () => {
  const model = createTinyModel(ALL);
  assertThrowsInput(
    () => model.importWeights(createTinyModel({ ...ALL, rank: 4 }).exportWeights()),
    "weights: rank mismatch: checkpoint has rank 4, model has rank 8",
  );
  assertThrowsInput(
    () => model.importWeights(createTinyModel({ ...ALL, trainMlp: false }).exportWeights()),
    /module mismatch: checkpoint has train_mlp=false, model has train_mlp=true/,
  );
  assertThrowsInput(() => model.importWeights(createTinyModel({ ...ALL, baseModel: "other" }).exportWeights()), /base_model mismatch/);
  assertThrowsInput(
    () => model.importWeights(createTinyModel({ ...ALL, vocabSize: 1001 }).exportWeights()),
    "weights: vocab_size mismatch: checkpoint has 1001 ids, model has 1000",
  );
  const v1 = parseSafetensors(model.exportWeights());
  assertThrowsInput(
    () => model.importWeights(writeSafetensors(v1.tensors, { ...v1.metadata, format: "tinker-ts.tiny-lora.v1" })),
    /format "tinker-ts\.tiny-lora\.v1" is not "tinker-ts\.tiny-lora\.v2" \(written by an older tinker-ts/,
  );
  // Without metadata the tensor set and shapes are still checked.
  const strip = (buf: Buffer) => writeSafetensors(parseSafetensors(buf).tensors, {});
  assertThrowsInput(
    () => model.importWeights(strip(createTinyModel({ ...ALL, trainMlp: false }).exportWeights())),
    /missing tensor "base_model\.model\.layers\.0\.mlp\.lora_A\.weight"/,
  );
  assertThrowsInput(
    () => createTinyModel({ ...ALL, trainMlp: false }).importWeights(strip(model.exportWeights())),
    /unexpected tensor "base_model\.model\.layers\.0\.mlp\.lora_A\.weight"/,
  );
  assertThrowsInput(
    () => model.importWeights(strip(createTinyModel({ ...ALL, rank: 2 }).exportWeights())),
    /has shape \[2, 16\], expected \[8, 16\]/,
  );
  // A failed import leaves the model untouched.
  const before = model.exportWeights();
  const good = parseSafetensors(before);
  const tensors = new Map(good.tensors);
  const first = [...tensors.keys()][0]!;
  tensors.set(first, { shape: good.tensors.get(first)!.shape, data: good.tensors.get(first)!.data.map(() => 1) });
  const last = [...tensors.keys()].at(-1)!;
  tensors.set(last, { shape: [1, 1], data: new Float64Array(1) });
  assertThrowsInput(() => model.importWeights(writeSafetensors(tensors, good.metadata)), /has shape/);
  assert.ok(model.exportWeights().equals(before));

  assertThrowsInput(
    () => model.importOptimizer(createTinyModel({ ...ALL, rank: 4 }).exportOptimizer()),
    /optimizer: tensor ".*exp_avg" has shape \[4, 16\], expected \[8, 16\]/,
  );
  assertThrowsInput(
    () => model.importOptimizer(writeSafetensors(parseSafetensors(model.exportOptimizer()).tensors, {})),
    /metadata "step"/,
  );
  assertThrowsInput(() => model.importOptimizer(model.exportWeights()), /missing tensor/);
});

test("readWeightsConfig and adapterConfigJson describe the adapter", () => {
  const model = createTinyModel({ ...ALL, rank: 6, seed: 2, alpha: 12.5, trainAttn: false });
  assert.deepEqual(readWeightsConfig(model.exportWeights()), model.config);
  assert.deepEqual(adapterConfigJson(model.config), {
    base_model_name_or_path: ALL.baseModel,
    r: 6,
    lora_alpha: 12.5,
    target_modules: ["mlp", "lm_head"],
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    lora_dropout: 0,
    bias: "none",
    fan_in_fan_out: false,
    inference_mode: true,
  });
  assertThrowsInput(() => readWeightsConfig(writeSafetensors(new Map(), {})), /missing "base_model"/);
});

test("safetensors round trip is exact and the layout follows the format", () => {
  const special = Float64Array.from([0, -0, 1.5, -1e-308, 5e-324, Infinity, -Infinity, Math.PI, 1 / 3]);
  const tensors = new Map<string, SafetensorsTensor>([
    ["a", { shape: [3, 3], data: special }],
    ["empty", { shape: [0, 4], data: new Float64Array(0) }],
    ["vec", { shape: [2], data: Float64Array.from([7, 8]) }],
  ]);
  const buf = writeSafetensors(tensors, { step: "12", note: "héllo" });
  const headerLen = Number(buf.readBigUInt64LE(0));
  assert.equal((8 + headerLen) % 8, 0, "data section is 8-byte aligned");
  const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString("utf8"));
  assert.deepEqual(header.a, { dtype: "F64", shape: [3, 3], data_offsets: [0, 72] });
  assert.deepEqual(header.empty, { dtype: "F64", shape: [0, 4], data_offsets: [72, 72] });
  assert.deepEqual(header.vec, { dtype: "F64", shape: [2], data_offsets: [72, 88] });
  assert.deepEqual(header.__metadata__, { step: "12", note: "héllo" });
  assert.equal(buf.length, 8 + headerLen + 88);
  assert.equal(buf.readDoubleLE(8 + headerLen + 16), 1.5);

  // Parse from an unaligned view into a larger buffer.
  const shifted = Buffer.concat([Buffer.from([0xff]), buf]).subarray(1);
  for (const parsed of [parseSafetensors(buf), parseSafetensors(shifted)]) {
    assert.deepEqual(parsed.metadata, { step: "12", note: "héllo" });
    assert.deepEqual([...parsed.tensors.keys()], ["a", "empty", "vec"]);
    const a = parsed.tensors.get("a")!;
    assert.deepEqual(a.shape, [3, 3]);
    for (let i = 0; i < special.length; i++) assert.ok(Object.is(a.data[i], special[i]), `a[${i}]`);
    assert.deepEqual(parsed.tensors.get("vec")!.data, Float64Array.from([7, 8]));
    assert.ok(writeSafetensors(parsed.tensors, parsed.metadata).equals(buf));
  }

  // Record input and F32 tensors written by other tools are accepted.
  assert.ok(
    writeSafetensors(
      { a: tensors.get("a")!, empty: tensors.get("empty")!, vec: tensors.get("vec")! },
      { step: "12", note: "héllo" },
    ).equals(buf),
  );
  const f32Header = Buffer.from(JSON.stringify({ w: { dtype: "F32", shape: [2], data_offsets: [0, 8] } }));
  const f32 = Buffer.alloc(8 + f32Header.length + 8);
  f32.writeBigUInt64LE(BigInt(f32Header.length), 0);
  f32Header.copy(f32, 8);
  f32.writeFloatLE(0.25, 8 + f32Header.length);
  f32.writeFloatLE(-3, 12 + f32Header.length);
  assert.deepEqual(parseSafetensors(f32).tensors.get("w"), { shape: [2], data: Float64Array.from([0.25, -3]) });
  assert.deepEqual(parseSafetensors(f32).metadata, {});

  assertThrowsInput(() => writeSafetensors(new Map([["x", { shape: [2, 2], data: new Float64Array(3) }]])), /needs 4/);
});

test("parseSafetensors rejects malformed files", () => {
  const file = (header: unknown, dataBytes = 0, declaredLen?: number): Buffer => {
    const json = Buffer.from(typeof header === "string" ? header : JSON.stringify(header));
    const out = Buffer.alloc(8 + json.length + dataBytes);
    out.writeBigUInt64LE(BigInt(declaredLen ?? json.length), 0);
    json.copy(out, 8);
    return out;
  };
  const ok = { t: { dtype: "F64", shape: [1], data_offsets: [0, 8] } };
  assert.equal(parseSafetensors(file(ok, 8)).tensors.size, 1);
  const cases: Array<[Buffer, RegExp]> = [
    [Buffer.alloc(4), /too short/],
    [file(ok, 8, 1_000_000), /exceeds file size/],
    [file(ok, 8, 2 ** 40), /exceeds file size/],
    [file("{not json", 0), /not valid JSON/],
    [file([1, 2], 0), /not a JSON object/],
    [file({ t: { dtype: "I8", shape: [1], data_offsets: [0, 1] } }, 1), /unsupported dtype/],
    [file({ t: { dtype: "F64", shape: [-1], data_offsets: [0, 8] } }, 8), /invalid shape/],
    [file({ t: { dtype: "F64", shape: [1], data_offsets: [0] } }, 8), /invalid data_offsets/],
    [file({ t: { dtype: "F64", shape: [1], data_offsets: [0, 16] } }, 8), /outside the data section/],
    [file({ t: { dtype: "F64", shape: [1], data_offsets: [8, 0] } }, 8), /outside the data section/],
    [file({ t: { dtype: "F64", shape: [2], data_offsets: [0, 8] } }, 8), /needs 16/],
    [
      file({ a: { dtype: "F64", shape: [2], data_offsets: [0, 16] }, b: { dtype: "F64", shape: [1], data_offsets: [8, 16] } }, 16),
      /overlap/,
    ],
    [file({ __metadata__: { step: 3 } }, 0), /metadata "step" must be a string/],
    [file({ t: "nope" }, 0), /entry must be an object/],
  ];
  for (const [buf, pattern] of cases) assertThrowsInput(() => parseSafetensors(buf), pattern);
});

test("forwardBackward validates its inputs with precise messages and stays atomic", () => {
  const model = createTinyModel(ALL);
  const good = datum([1, 2, 3], [2, 3, 4]);
  assertThrowsInput(() => model.forwardBackward([], "cross_entropy"), /^data: must be a non-empty array/);
  assertThrowsInput(
    () => model.forwardBackward([good, datum([1, 1000], [2, 3])], "cross_entropy"),
    "data[1].model_input.chunks[0].tokens[1]: token 1000 is not an integer in [0, 1000)",
  );
  assertThrowsInput(
    () => model.forwardBackward([datum([1, 2.5], [2, 3])], "cross_entropy"),
    /^data\[0\]\.model_input\.chunks\[0\]\.tokens\[1\]: token 2\.5/,
  );
  assertThrowsInput(
    () => model.forwardBackward([good, good, datum([1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5])], "cross_entropy"),
    "data[2].loss_fn_inputs.target_tokens: length 5 does not match model_input length 6",
  );
  assertThrowsInput(
    () => model.forwardBackward([datum([1, 2], [2, -1])], "cross_entropy"),
    /^data\[0\]\.loss_fn_inputs\.target_tokens\.data\[1\]: token -1/,
  );
  assertThrowsInput(
    () => model.forwardBackward([datum([1, 2], [2, 3], [1])], "cross_entropy"),
    "data[0].loss_fn_inputs.weights: length 1 does not match model_input length 2",
  );
  assertThrowsInput(
    () => model.forwardBackward([datum([1, 2], [2, 3], [1, Number.NaN])], "cross_entropy"),
    /^data\[0\]\.loss_fn_inputs\.weights\.data\[1\]: weight NaN is not a finite number/,
  );
  assertThrowsInput(() => model.forwardBackward([datum([], [])], "cross_entropy"), /^data\[0\]\.model_input: contains no tokens/);
  const badShape = datum([1, 2], [2, 3]);
  badShape.loss_fn_inputs.target_tokens.shape = [3];
  assertThrowsInput(() => model.forwardBackward([badShape], "cross_entropy"), /target_tokens\.shape: \[3\] does not match data length 2/);
  const image = { model_input: { chunks: [{ type: "image", data: "" }] }, loss_fn_inputs: good.loss_fn_inputs } as unknown as Datum;
  assertThrowsInput(() => model.forwardBackward([image], "cross_entropy"), /chunks\[0\]\.type: unsupported chunk type "image"/);
  assertThrowsInput(() => model.forwardBackward([good], "gspo" as "cross_entropy"), /^loss_fn: unsupported loss function "gspo"/);
  // None of the failed calls accumulated anything.
  for (const g of model.gradients().values()) assert.ok(g.every((v) => v === 0));
});

test("optimStep validates adam_params", () => {
  const model = createTinyModel(ALL);
  const cases: Array<[Partial<AdamParams>, string]> = [
    [{ beta1: 1 }, "adam_params.beta1: must be in [0, 1)"],
    [{ beta1: -0.1 }, "adam_params.beta1: must be in [0, 1)"],
    [{ beta2: 1.5 }, "adam_params.beta2: must be in [0, 1)"],
    [{ learning_rate: -1 }, "adam_params.learning_rate: must be >= 0"],
    [{ learning_rate: Number.POSITIVE_INFINITY }, "adam_params.learning_rate: must be a finite number"],
    [{ eps: 0 }, "adam_params.eps: must be > 0"],
    [{ weight_decay: -0.5 }, "adam_params.weight_decay: must be >= 0"],
    [{ grad_clip_norm: -1 }, "adam_params.grad_clip_norm: must be >= 0"],
    [{ grad_clip_norm: Number.NaN }, "adam_params.grad_clip_norm: must be a finite number"],
  ];
  for (const [patch, message] of cases) assertThrowsInput(() => model.optimStep({ ...ADAM, ...patch }), message);
  assert.equal(model.optimizerStep, 0, "failed steps do not count");
});
