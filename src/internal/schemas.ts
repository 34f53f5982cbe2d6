/**
 * zod schemas for every response body tinker-ts reads, mirroring `spec/tinker.openapi.yaml`.
 *
 * Optional (`?`) and nullable (`| null`) exactly as in the spec; timestamps are RFC 3339 strings with an
 * offset (`Z` or `+00:00`); objects use `z.object`, so unknown fields from a newer server are dropped rather
 * than rejected. `test/schemas.typetest.ts` proves each `z.infer` equals the generated wire type both ways.
 *
 * @example
 * ```ts
 * const run = TrainingRunSchema.parse(json); // typed as components["schemas"]["TrainingRun"]
 * ```
 *
 * @module
 */
import { z } from "zod";

const int = () => z.number().int();
/** An ISO-8601 date-time; one without an offset (as some service answers have) is read as UTC (a `Z` is added). */
const timestamp = () =>
  z.preprocess(
    (v) => (typeof v === "string" && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(v) ? `${v}Z` : v),
    z.iso.datetime({ offset: true }),
  );

/** `{"request_id", "model_id"?}`: the direct answer of every training-op POST. */
export const UntypedAPIFutureSchema = z.object({
  request_id: z.string(),
  model_id: z.string().optional(),
});

/** Answer of `POST /api/v1/create_session`. */
export const CreateSessionResponseSchema = z.object({
  session_id: z.string(),
  type: z.literal("create_session").optional(),
  info_message: z.string().nullish(),
  warning_message: z.string().nullish(),
  error_message: z.string().nullish(),
});

/** Answer of `POST /api/v1/session_heartbeat` (`{}` is valid). */
export const SessionHeartbeatResponseSchema = z.object({
  type: z.literal("session_heartbeat").optional(),
});

/** Answer of `POST /api/v1/client/config`; every field has a server-side default, so `{}` is valid. */
export const ClientConfigResponseSchema = z.object({
  pjwt_auth_enabled: z.boolean().optional(),
  credential_default_source: z.string().optional(),
  sample_dispatch_bytes_semaphore_size: int().optional(),
  inflight_response_bytes_semaphore_size: int().optional(),
  parallel_fwdbwd_chunks: z.boolean().optional(),
  proto_compress_fwdbwd: z.boolean().optional(),
  fwdbwd_max_chunk_len: int().optional(),
  fwdbwd_max_chunk_bytes_count: int().optional(),
  fwdbwd_dispatch_bytes_semaphore_size: int().optional(),
  billing_exception_max_pause_duration_sec: z.number().optional(),
  sample_no_retries: z.boolean().optional(),
  sample_enable_stuck_detection: z.boolean().optional(),
  sample_max_concurrent_requests: int().optional(),
  use_pyqwest_transport: z.boolean().optional(),
  create_model_via_load_weights: z.boolean().optional(),
});

/** Answer of `POST /api/v1/client/dynamic_config`. */
export const DynamicConfigResponseSchema = z.object({
  refresh_interval_sec: int().optional(),
});

/** Answer of `POST /api/v1/telemetry`: the literal `{"status":"accepted"}`. */
export const TelemetryResponseSchema = z.object({
  status: z.literal("accepted"),
});

/** One entry of {@link GetServerCapabilitiesResponseSchema}. */
export const SupportedModelSchema = z.object({
  model_name: z.string().nullish(),
  max_context_length: int().nullish(),
});

/** Answer of `GET /api/v1/get_server_capabilities`. */
export const GetServerCapabilitiesResponseSchema = z.object({
  supported_models: z.array(SupportedModelSchema),
});

/** Answer of `GET /api/v1/healthz`: the literal `{"status":"ok"}`. */
export const HealthResponseSchema = z.object({
  status: z.literal("ok"),
});

/** Result of a `create_model` future. */
export const CreateModelResponseSchema = z.object({
  model_id: z.string(),
  type: z.literal("create_model").optional(),
});

/** `model_data` of {@link GetInfoResponseSchema}. */
export const ModelDataSchema = z.object({
  arch: z.string().nullish(),
  model_name: z.string().nullish(),
  /** As the Python SDK: a `:suffix` (e.g. a revision) is dropped, leaving the tokenizer's repository id. */
  tokenizer_id: z
    .string()
    .transform((v) => v.split(":")[0]!)
    .nullish(),
});

/** Answer of `POST /api/v1/get_info`. */
export const GetInfoResponseSchema = z.object({
  type: z.literal("get_info").optional(),
  model_data: ModelDataSchema,
  model_id: z.string(),
  is_lora: z.boolean().nullish(),
  lora_rank: int().nullish(),
  model_name: z.string().nullish(),
});

/** Result of an `unload_model` future. */
export const UnloadModelResponseSchema = z.object({
  model_id: z.string(),
  type: z.literal("unload_model").optional(),
});

/** A flat numeric tensor with its dtype and optional shape. */
export const TensorDataSchema = z.object({
  data: z.array(z.number()),
  dtype: z.enum(["int64", "float32"]),
  shape: z.array(int().nonnegative()).nullish(),
  sparse_crow_indices: z.array(int().nonnegative()).nullish(),
  sparse_col_indices: z.array(int().nonnegative()).nullish(),
});

/** Result of a `forward_backward` future (JSON form). */
export const ForwardBackwardOutputSchema = z.object({
  loss_fn_output_type: z.string(),
  loss_fn_outputs: z.array(z.record(z.string(), TensorDataSchema)),
  metrics: z.record(z.string(), z.number()).optional(),
});

/** Result of an `optim_step` future. */
export const OptimStepResponseSchema = z.object({
  metrics: z.record(z.string(), z.number()).nullish(),
});

/** Result of a `save_weights` future: the new checkpoint's tinker path. */
export const SaveWeightsResponseSchema = z.object({
  path: z.string(),
  type: z.literal("save_weights").optional(),
});

/** Result of a `load_weights` future (`{}` is valid). */
export const LoadWeightsResponseSchema = z.object({
  path: z.string().nullish(),
  model_id: z.string().nullish(),
  type: z.literal("load_weights").optional(),
});

/** What a `save_weights_for_sampler` future's result is parsed as (path for named saves, sampling session otherwise). */
export const SaveWeightsForSamplerResponseInternalSchema = z.object({
  path: z.string().nullish(),
  sampling_session_id: z.string().nullish(),
  type: z.literal("save_weights_for_sampler").optional(),
});

/** The public result of a named `save_weights_for_sampler`. */
export const SaveWeightsForSamplerResponseSchema = z.object({
  path: z.string(),
  type: z.literal("save_weights_for_sampler").optional(),
});

/** Answer of `POST /api/v1/create_sampling_session`. */
export const CreateSamplingSessionResponseSchema = z.object({
  sampling_session_id: z.string(),
  type: z.literal("create_sampling_session").optional(),
});

/** Answer of `GET /api/v1/samplers/{sampler_id}`. */
export const GetSamplerResponseSchema = z.object({
  sampler_id: z.string(),
  base_model: z.string(),
  model_path: z.string().nullish(),
});

/** Server queue state reported in `try_again`. */
export const QueueStateSchema = z.enum(["active", "paused_capacity", "paused_rate_limit"]);

/** `retrieve_future` answer meaning "not ready yet, poll again". */
export const TryAgainResponseSchema = z.object({
  type: z.literal("try_again"),
  request_id: z.string(),
  queue_state: QueueStateSchema,
  queue_state_reason: z.string().nullish(),
});

/** `retrieve_future` answer meaning the request failed; `category` says whose fault. */
export const RequestFailedResponseSchema = z.object({
  error: z.string(),
  category: z.enum(["unknown", "server", "user"]),
});

/** `retrieve_future` answer saying the result is too large to inline; poll again with `allow_metadata_only: false`. */
export const MetadataOnlyResponseSchema = z.object({
  status: z.literal("complete_metadata"),
  response_payload_size: int().nonnegative(),
});

/** Answer of `POST /api/v1/weights_info`: the LoRA configuration a checkpoint was trained with. */
export const WeightsInfoResponseSchema = z.object({
  base_model: z.string(),
  is_lora: z.boolean(),
  lora_rank: int().nullish(),
  train_unembed: z.boolean().nullish(),
  train_mlp: z.boolean().nullish(),
  train_attn: z.boolean().nullish(),
});

/** `training` (from `save_state`) or `sampler` (from `save_weights_for_sampler`). */
export const CheckpointTypeSchema = z.enum(["training", "sampler"]);

/** A stored checkpoint. `checkpoint_id` is `weights/<name>` or `sampler_weights/<name>`. */
export const CheckpointSchema = z.object({
  checkpoint_id: z.string(),
  checkpoint_type: CheckpointTypeSchema,
  time: timestamp(),
  tinker_path: z.string(),
  size_bytes: int().nullish(),
  public: z.boolean().optional(),
  expires_at: timestamp().nullish(),
});

/** Offset pagination state of a list answer. */
export const CursorSchema = z.object({
  offset: int(),
  limit: int(),
  total_count: int(),
});

/** Answer of the checkpoint list endpoints (`cursor` absent or null for a run's own list). */
export const CheckpointsListResponseSchema = z.object({
  checkpoints: z.array(CheckpointSchema),
  cursor: CursorSchema.nullish(),
});

/** A training run (= a trained model) and its latest checkpoints. */
export const TrainingRunSchema = z.object({
  training_run_id: z.string(),
  base_model: z.string(),
  model_owner: z.string(),
  is_lora: z.boolean(),
  corrupted: z.boolean().optional(),
  lora_rank: int().nullish(),
  last_request_time: timestamp(),
  last_checkpoint: CheckpointSchema.nullish(),
  last_sampler_checkpoint: CheckpointSchema.nullish(),
  /** Values as the service sends them: strings usually, but any JSON value is accepted. */
  user_metadata: z.record(z.string(), z.unknown()).nullish(),
});

/** Answer of `GET /api/v1/training_runs` (cursor required). */
export const TrainingRunsResponseSchema = z.object({
  training_runs: z.array(TrainingRunSchema),
  cursor: CursorSchema,
});

/** The 200 form of the archive endpoint: a signed download URL and when it expires. */
export const CheckpointArchiveUrlResponseSchema = z.object({
  url: z.string(),
  expires: timestamp(),
});

/** Answer of `GET /api/v1/sessions`. */
export const ListSessionsResponseSchema = z.object({
  sessions: z.array(z.string()),
});

/** Answer of `GET /api/v1/sessions/{session_id}`. */
export const GetSessionResponseSchema = z.object({
  training_run_ids: z.array(z.string()),
  sampler_ids: z.array(z.string()),
});

/** An error body (`detail` is free-form; servers put a human-readable explanation there). */
export const ErrorResponseSchema = z.object({
  detail: z.unknown().optional(),
  field: z.string().optional(),
  request_id: z.string().optional(),
});

/** Inferred types, identical to the generated `components["schemas"][...]` (see `test/schemas.typetest.ts`). */
export type UntypedAPIFuture = z.infer<typeof UntypedAPIFutureSchema>;
/** See {@link CheckpointSchema}. */
export type Checkpoint = z.infer<typeof CheckpointSchema>;
/** See {@link TrainingRunSchema}. */
export type TrainingRun = z.infer<typeof TrainingRunSchema>;
/** See {@link CursorSchema}. */
export type Cursor = z.infer<typeof CursorSchema>;
