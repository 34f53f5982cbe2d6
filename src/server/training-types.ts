/**
 * Types and small helpers of the training host (`training.ts`): its options, the live model record, the operation
 * events it reports, and the adapter files a checkpoint holds.
 *
 * @module
 */
import type { Buffer } from "node:buffer";
import type { FutureRecord, FutureRegistry } from "./futures.js";
import { adapterConfigJson, type TinyLoraModel } from "./model/index.js";
import type { Sequencer } from "./ordering.js";
import type { LoraInfo, Store } from "./store.js";
import type { HttpError } from "./util.js";

/** The future answer of every training POST. */
export type FutureReply = { request_id: string; model_id: string };

/** A base model the server accepts. */
export type SupportedModel = { model_name: string; max_context_length: number };

/** Options of {@link TrainingHost}. */
export type TrainingHostOptions = {
  store: Store;
  futures: FutureRegistry;
  clock: () => number;
  log: (line: string) => void;
  futureDelayMs: number;
  seqGapTimeoutMs: number;
  minTtlSeconds: number;
  supportedModels: readonly SupportedModel[];
  /** Called when an operation finishes (times from `performance.now()`), for benchmarks and tracing. */
  onOperation?: ((event: OperationEvent) => void) | undefined;
  /** The owner a `weights_access_token` stands for (an API key or a JWT of this server), if valid. */
  tokenOwner?: ((token: string) => string | undefined) | undefined;
  /** Records the sampler an unnamed `save_weights_for_sampler` created (and lists it under its session). */
  onSamplerSaved: (info: {
    owner: string;
    samplerId: string;
    sessionId: string | null;
    baseModel: string;
    modelPath: string;
  }) => Promise<void>;
};

/** One finished training operation, as reported to `onOperation`. */
export type OperationEvent = {
  requestId: string;
  /** The request type, e.g. `OptimStep`. */
  type: string;
  modelId: string | undefined;
  /** `performance.now()` when the operation started executing (after any `futureDelayMs`). */
  startedAt: number;
  /** `performance.now()` just before its result was made visible to pollers. */
  completedAt: number;
  ok: boolean;
};

export type LiveModel = {
  runId: string;
  owner: string;
  sessionId: string | null;
  baseModel: string;
  lora: LoraInfo;
  model: TinyLoraModel | undefined;
  createError: string | undefined;
  sequencer: Sequencer;
  /** seq id → request id of the original request, or the error it was rejected with. */
  seqRequests: Map<number, string | HttpError>;
  /** Futures queued on this model and not yet complete. */
  pending: Set<FutureRecord>;
  createRequestId: string;
  unloadRequestId: string | undefined;
};

/** Converts a model config to the stored LoRA description. */
export function loraOf(model: TinyLoraModel): LoraInfo {
  const c = model.config;
  return { rank: c.rank, seed: c.seed, alpha: c.alpha, train_attn: c.trainAttn, train_mlp: c.trainMlp, train_unembed: c.trainUnembed };
}

/** A LoRA description for messages. */
export function describeLora(baseModel: string, l: LoraInfo): string {
  return `{base_model: ${JSON.stringify(baseModel)}, rank: ${l.rank}, alpha: ${l.alpha}, train_attn: ${l.train_attn}, train_mlp: ${l.train_mlp}, train_unembed: ${l.train_unembed}}`;
}

/** The PEFT-style adapter files every checkpoint holds: the config and the LoRA weights. */
export function adapterFiles(model: TinyLoraModel, weights: Buffer): Array<{ name: string; data: string | Buffer }> {
  return [
    { name: "adapter_config.json", data: `${JSON.stringify(adapterConfigJson(model.config), null, 2)}\n` },
    { name: "adapter_model.safetensors", data: weights },
  ];
}
