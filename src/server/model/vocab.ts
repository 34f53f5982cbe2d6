/**
 * Vocabulary sizes and end-of-sequence ids of the base models the local server knows, and the factorisation
 * of a vocabulary into classes × slots that the tiny model's two-level softmax uses.
 *
 * Token ids are those of the real tokenizer: the server accepts every id below the base model's vocabulary
 * size (the row count of its embedding matrix, `vocab_size` in the model's `config.json`, which can exceed the
 * tokenizer's own token count: Qwen3's tokenizer has 151 669 tokens, its embedding 151 936 rows).
 *
 * @module
 */

/** A base model family's vocabulary. */
export type VocabInfo = {
  /** Family name, e.g. `Qwen3`. */
  readonly family: string;
  /** Valid token ids are integers in [0, vocabSize). */
  readonly vocabSize: number;
  /**
   * Token ids that end a sample when the request gives no `stop` (the first is the model's end-of-sequence
   * token; the others are further end-of-turn/end-of-text tokens of the family's generation config).
   */
  readonly eosTokenIds: readonly number[];
};

/** Families recognised by base model name (case-insensitive), in match order. */
export const VOCAB_FAMILIES: ReadonlyArray<{ pattern: RegExp; info: VocabInfo }> = Object.freeze([
  // Qwen3 (config.json vocab_size 151936): <|im_end|> 151645, <|endoftext|> 151643.
  { pattern: /qwen3/i, info: Object.freeze({ family: "Qwen3", vocabSize: 151_936, eosTokenIds: Object.freeze([151_645, 151_643]) }) },
  // Llama 3.x (vocab_size 128256): <|eot_id|> 128009, <|end_of_text|> 128001, <|eom_id|> 128008.
  {
    pattern: /llama-?3/i,
    info: Object.freeze({ family: "Llama 3", vocabSize: 128_256, eosTokenIds: Object.freeze([128_009, 128_001, 128_008]) }),
  },
  // gpt-oss (o200k_harmony, vocab_size 201088): <|return|> 200002, <|endoftext|> 199999, <|call|> 200012.
  {
    pattern: /gpt-oss/i,
    info: Object.freeze({ family: "gpt-oss", vocabSize: 201_088, eosTokenIds: Object.freeze([200_002, 199_999, 200_012]) }),
  },
]);

/**
 * The vocabulary of a base model the server does not recognise by name: the Qwen3 size, and no
 * end-of-sequence token (a sample then ends only at `max_tokens` or a requested stop token).
 */
export const DEFAULT_VOCAB: VocabInfo = Object.freeze({ family: "unknown", vocabSize: 151_936, eosTokenIds: Object.freeze([]) });

/** Largest vocabulary the tiny model accepts (ids travel as int32). */
export const MAX_VOCAB_SIZE = 1 << 24;

/**
 * The vocabulary of `baseModel`: its family's entry in {@link VOCAB_FAMILIES}, else {@link DEFAULT_VOCAB}.
 *
 * @example
 * ```ts
 * vocabForBaseModel("Qwen/Qwen3-8B").vocabSize; // 151936
 * vocabForBaseModel("meta-llama/Llama-3.1-8B").eosTokenIds[0]; // 128009
 * ```
 */
export function vocabForBaseModel(baseModel: string): VocabInfo {
  for (const { pattern, info } of VOCAB_FAMILIES) if (pattern.test(baseModel)) return info;
  return DEFAULT_VOCAB;
}

/**
 * How a vocabulary of V ids splits into C classes of S slots: id = class · S + slot, S = ⌈√V⌉,
 * C = ⌈V / S⌉; the last class holds only `lastClassSize` = V − (C − 1)·S valid slots.
 */
export type Factorization = Readonly<{
  vocabSize: number;
  /** S, slots per class. */
  classSize: number;
  /** C, number of classes. */
  numClasses: number;
  /** L, valid slots in the last class (1 ≤ L ≤ S). */
  lastClassSize: number;
}>;

/**
 * Factorises a vocabulary size into classes × slots (see {@link Factorization}).
 *
 * @example
 * ```ts
 * factorize(151936); // { vocabSize: 151936, classSize: 390, numClasses: 390, lastClassSize: 226 }
 * ```
 */
export function factorize(vocabSize: number): Factorization {
  const classSize = Math.ceil(Math.sqrt(vocabSize));
  const numClasses = Math.ceil(vocabSize / classSize);
  return Object.freeze({ vocabSize, classSize, numClasses, lastClassSize: vocabSize - (numClasses - 1) * classSize });
}
