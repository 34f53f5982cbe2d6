/**
 * `tinker-ts sample PATH --prompt-tokens 1,2,3 …`: samples from a checkpoint (or a base model) and prints the
 * sampled token ids with their logprobs.
 *
 * @module
 */
import { resolveConnection } from "../internal/config.js";
import { ServiceClient } from "../service-client.js";
import type { SampleResponse, SamplingParams } from "../sampling-client.js";
import { lookOf, renderColumns } from "./term.js";
import { cliLogOptions, UsageError, outputFormat, parseCommand, positiveInt, writeJson, type CliIO } from "./util.js";

const USAGE =
  "tinker-ts sample (PATH | --base-model MODEL) --prompt-tokens 1,2,3 [--max-tokens N] [--num-samples N] [--temperature T] [--top-k K] [--top-p P] [--seed S] [--stop-tokens IDS] [--format table|json]";

/** Help of `tinker-ts sample`. */
export const SAMPLE_HELP = `Usage: ${USAGE}

Sample continuations of a prompt from a sampler checkpoint (tinker://<run>/sampler_weights/<name>), a training
checkpoint, or a base model, and print the sampled token ids with their logprobs.

Options:
  --prompt-tokens IDS   The prompt as comma-separated token ids (required)
  --base-model MODEL    Sample from a base model instead of a checkpoint PATH
  --max-tokens N        Tokens to generate at most (default 16)
  --num-samples N       Independent samples (default 1)
  --temperature T       Sampling temperature ≥ 0 (default 1; 0 = greedy)
  --top-k K             Keep the K most likely tokens (default: no limit)
  --top-p P             Nucleus mass in (0, 1] (default 1)
  --seed S              Seed: the same request with the same seed gives the same tokens
  --stop-tokens IDS     Comma-separated token ids that end a sample (default: the model's end-of-sequence ids)
  --format FORMAT       table (default) or json (the decoded SampleResponse)
  -h, --help            Show this help

Environment: TINKER_BASE_URL, TINKER_API_KEY (as for every command).
`;

function tokenList(value: string, flag: string): number[] {
  const parts = value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (parts.length === 0) throw new UsageError(`${flag} needs at least one token id, e.g. ${flag} 1,2,3.`, USAGE);
  return parts.map((p) => {
    if (!/^\d+$/.test(p) || !Number.isSafeInteger(Number(p)))
      throw new UsageError(`${flag}: ${JSON.stringify(p)} is not a token id (a whole number ≥ 0).`, USAGE);
    return Number(p);
  });
}

function numberOption(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n)) throw new UsageError(`${flag} must be a number, got ${JSON.stringify(value)}.`, USAGE);
  return n;
}

function intOption(value: string | undefined, flag: string): number | undefined {
  const n = numberOption(value, flag);
  if (n !== undefined && !Number.isSafeInteger(n))
    throw new UsageError(`${flag} must be a whole number, got ${JSON.stringify(value)}.`, USAGE);
  return n;
}

/**
 * Runs `tinker-ts sample …` and returns the exit code.
 *
 * @throws {UsageError} for bad arguments; SDK errors for what the server refuses.
 * @example
 * ```ts
 * const code = await runSampleCommand(["tinker://run-1/sampler_weights/final", "--prompt-tokens", "1,2,3"], io);
 * ```
 */
export async function runSampleCommand(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseCommand(
    args,
    {
      "prompt-tokens": { type: "string" },
      "base-model": { type: "string" },
      "max-tokens": { type: "string" },
      "num-samples": { type: "string" },
      temperature: { type: "string" },
      "top-k": { type: "string" },
      "top-p": { type: "string" },
      seed: { type: "string" },
      "stop-tokens": { type: "string" },
    },
    USAGE,
  );
  if (values.help === true) {
    io.stdout.write(SAMPLE_HELP);
    return 0;
  }
  const format = outputFormat(values.format, USAGE);
  if (positionals.length > 1) throw new UsageError(`Expected one checkpoint PATH, got ${positionals.length}.`, USAGE);
  const modelPath = positionals[0];
  const baseModel = values["base-model"];
  if ((modelPath === undefined) === (baseModel === undefined)) {
    throw new UsageError("Give either a checkpoint PATH (tinker://<run>/sampler_weights/<name>) or --base-model MODEL.", USAGE);
  }
  if (values["prompt-tokens"] === undefined) throw new UsageError("Missing --prompt-tokens (e.g. --prompt-tokens 151644,872,198).", USAGE);
  const prompt = tokenList(values["prompt-tokens"], "--prompt-tokens");
  const numSamples = positiveInt(values["num-samples"], "--num-samples", USAGE) ?? 1;
  const params: SamplingParams = { max_tokens: positiveInt(values["max-tokens"], "--max-tokens", USAGE) ?? 16 };
  const seed = intOption(values.seed, "--seed");
  if (seed !== undefined) params.seed = seed;
  if (values["stop-tokens"] !== undefined) params.stop = tokenList(values["stop-tokens"], "--stop-tokens");
  const temperature = numberOption(values.temperature, "--temperature");
  if (temperature !== undefined) params.temperature = temperature;
  const topK = intOption(values["top-k"], "--top-k");
  if (topK !== undefined) params.top_k = topK;
  const topP = numberOption(values["top-p"], "--top-p");
  if (topP !== undefined) params.top_p = topP;

  const { baseUrl, apiKey } = resolveConnection({}, io.env);
  const service = new ServiceClient({ baseUrl, apiKey, heartbeatIntervalMs: 10_000, ...cliLogOptions(io) });
  try {
    const sampler = await service.createSamplingClient(modelPath !== undefined ? { modelPath } : { baseModel: baseModel! });
    const res = await sampler.sample(prompt, numSamples, params);
    if (format === "json") {
      writeJson(io, {
        model_path: sampler.modelPath,
        base_model: sampler.baseModel,
        sampling_session_id: sampler.samplingSessionId,
        ...res,
      });
      return 0;
    }
    printTable(io, res);
    return 0;
  } finally {
    await service.close();
  }
}

function printTable(io: CliIO, res: SampleResponse): void {
  res.sequences.forEach((s, i) => {
    const total = (s.logprobs ?? []).reduce((a, b) => a + b, 0);
    io.stdout.write(
      `sample ${i}: ${s.tokens.length} token${s.tokens.length === 1 ? "" : "s"}, stop reason ${s.stop_reason}, total logprob ${total.toFixed(4)}\n`,
    );
    io.stdout.write(
      renderColumns(
        [
          { header: "POS", align: "right" },
          { header: "TOKEN", align: "right" },
          { header: "LOGPROB", align: "right" },
        ],
        s.tokens.map((t, j) => [String(j), String(t), s.logprobs?.[j] === undefined ? "-" : s.logprobs[j]!.toFixed(4)]),
        lookOf(io),
      ),
    );
  });
}
