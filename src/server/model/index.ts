/**
 * The tiny model of the local server (see README.md in this folder): one import point for the server.
 *
 * @module
 */

export { HIDDEN_SIZE } from "./kernels.js";
export { fnv1a, mulberry32 } from "./rng.js";
export {
  DEFAULT_VOCAB,
  factorize,
  MAX_VOCAB_SIZE,
  VOCAB_FAMILIES,
  vocabForBaseModel,
  type Factorization,
  type VocabInfo,
} from "./vocab.js";
export {
  DEFAULT_LORA_ALPHA,
  MAX_LORA_RANK,
  ModelInputError,
  WEIGHTS_FORMAT,
  type AdamParams,
  type Datum,
  type ForwardBackwardOutput,
  type ModelInputChunk,
  type NumericArray,
  type OutputTensor,
  type ParsedSafetensors,
  type SafetensorsTensor,
  type TensorData,
  type TinyModelConfig,
  type TinyModelOptions,
} from "./types.js";
export { LOSS_CONFIG_DEFAULTS, LOSS_FNS, resolveLossConfig, type LossConfig, type LossFn } from "./losses.js";
export { prepareBatch, type PreparedBatch, type PreparedDatum } from "./inputs.js";
export { parseSafetensors, writeSafetensors } from "./safetensors.js";
export { adapterConfigJson, createTinyModel, loadTinyModel, readWeightsConfig, type TinyLoraModel } from "./tiny-model.js";
export {
  endOfSequenceIds,
  nextTokenLogprobs,
  promptLogprobs,
  sample,
  sampleRandomStream,
  topkPromptLogprobs,
  type SampledSequence,
  type SampleOptions,
  type TopEntry,
} from "./sampling.js";
