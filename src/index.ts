/**
 * tinker-ts: training persistence and checkpoint management for the Tinker fine-tuning service, with a bundled
 * local Tinker-compatible server. This module is the package's only public surface.
 *
 * @example
 * ```ts
 * import { ServiceClient, downloadCheckpoint, startLocalServer } from "tinker-ts";
 *
 * const server = await startLocalServer(); // offline; or TINKER_BASE_URL/TINKER_API_KEY for the service
 * await using service = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey });
 * const training = await service.createLoraTrainingClient({ baseModel: "Qwen/Qwen3-8B", rank: 16 });
 * const { path } = await training.saveState("step-0"); // then: train, save, resume (see ServiceClient)
 * const { destination } = await downloadCheckpoint(service.createRestClient(), path, { outputDir: "ckpts" });
 * await server.close();
 * ```
 *
 * @module
 */
import type { components, paths } from "./core/wire.js";

export { ServiceClient } from "./service-client.js";
export type {
  ServiceClientOptions,
  CreateLoraTrainingClientOptions,
  CreateFromStateOptions,
  GetServerCapabilitiesResponse,
} from "./service-client.js";
export type { Logger, LogLevel, LoggingOptions, RequestEvent, ResponseEvent } from "./core/logging.js";

export { TrainingClient, crossEntropyDatum, rlDatum } from "./training-client.js";
export type { CustomLossFn, CustomLossResult, Numbers, RlDatumOptions } from "./datums.js";
export { TrainingClientStoppedError, InvalidDatumError } from "./core/training-errors.js";
export type { FailedOperation } from "./core/training-errors.js";
export type {
  AdamParams,
  Datum,
  TensorData,
  LossFnType,
  ForwardBackwardOutput,
  OptimStepResponse,
  SaveWeightsResponse,
  LoadWeightsResponse,
  SaveWeightsForSamplerResponse,
  GetInfoResponse,
  UnloadModelResponse,
  ForwardBackwardOptions,
  ForwardBackwardCustomOptions,
  SaveStateOptions,
  SaveWeightsForSamplerOptions,
  LoadStateOptions,
} from "./training-client.js";

export {
  SamplingClient,
  DEFAULT_MAX_CONCURRENT_SAMPLES,
  DEFAULT_SAMPLE_RETRIES,
  LARGE_PROMPT_BYTES,
  SAMPLE_BACKPRESSURE_BUDGET_MS,
} from "./sampling-client.js";
export type {
  CreateSamplingClientOptions,
  GetSamplerResponse,
  ModelInput,
  SampledSequence,
  SampleOptions,
  SampleResponse,
  SamplingParams,
} from "./sampling-client.js";
export type { SaveAndGetSamplingClientOptions } from "./training-client.js";

export { APIFuture } from "./core/futures.js";
export type { FutureResultOptions, QueueState, QueueStateChange } from "./core/futures.js";
export type { RequestOptions, RestRequestOptions, TrainingCallOptions } from "./core/options.js";
// Types that public signatures name (constructor inits, option bags, the transport a RestClient wraps).
export type { Transport, TransportAuth, TransportConfig, CallOptions } from "./internal/transport.js";
export type { RetryEvent } from "./internal/retry.js";
export type { SleepFn } from "./internal/sleep.js";
export type { APIErrorInit, ConnectionErrorInit } from "./core/errors.js";

export { RestClient } from "./rest-client.js";
export {
  RestAccountClient,
  type WhoamiResponse,
  type AuditLogOptions,
  type AuditLogResponse,
  type BillingUsageOptions,
  type BillingUsageResponse,
  type ExportSessionTraceOptions,
} from "./rest-account.js";
export type {
  AccessScope,
  AccessScopeOptions,
  ArchiveUrlOptions,
  CheckpointArchiveUrl,
  IterOptions,
  PageOptions,
  PageProgress,
  RestClientOptions,
  RestClientEnvOptions,
} from "./rest-client.js";

export { downloadCheckpoint, checkpointDirName } from "./download/download.js";
export type { ArchiveUrlProvider, DownloadCheckpointOptions, DownloadCheckpointResult, DownloadProgress } from "./download/download.js";

export { CheckpointLedger, LedgerFormatError, resumeOrStart, saveAndRecord, RESUMABLE_TTL_WARNING_SECONDS } from "./ledger.js";
export type {
  LedgerRecord,
  LedgerFileOptions,
  LedgerLatestOptions,
  ResumeOrStartOptions,
  ResumeOrStartResult,
  SaveAndRecordOptions,
} from "./ledger.js";

export { planCheckpointPruning, pruneCheckpoints, RollingCheckpoint } from "./retention.js";
export type {
  PlanPruningOptions,
  PruningPlan,
  PruneOptions,
  PruneFailure,
  PruneResult,
  RollingCheckpointOptions,
  RollingSaveResult,
} from "./retention.js";

export {
  parseTinkerPath,
  formatTinkerPath,
  validateCheckpointName,
  InvalidTinkerPathError,
  InvalidCheckpointNameError,
} from "./core/tinker-path.js";
export type { ParsedTinkerPath, CheckpointKind, CheckpointType } from "./core/tinker-path.js";

export {
  TinkerError,
  ConfigurationError,
  InvalidArgumentError,
  APIError,
  BadRequestError,
  AuthenticationError,
  PermissionDeniedError,
  NotFoundError,
  ConflictError,
  UnprocessableEntityError,
  RateLimitError,
  InternalServerError,
  PromiseExpiredError,
  APIConnectionError,
  APITimeoutError,
  ProxyError,
  APIUserAbortError,
  RequestFailedError,
  ResponseValidationError,
} from "./core/errors.js";
export {
  DestinationExistsError,
  UnsafeArchiveError,
  IncompleteCheckpointError,
  ArchiveExtractionError,
  ArchiveChangedError,
} from "./download/errors.js";
export type { RequestFailureCategory } from "./core/errors.js";
export { InvalidTtlError, validateTtlSeconds, MIN_CHECKPOINT_TTL_SECONDS } from "./core/ttl.js";

import type { LocalServer, LocalServerOptions } from "./server/index.js";
export type { LocalServer, LocalServerOptions, FaultRule, ClientConfig } from "./server/index.js";

/**
 * Starts a local Tinker-compatible server (the one `tinker-ts serve` runs): the same wire protocol, state on
 * disk, a tiny real model. Point a {@link ServiceClient} at `server.baseUrl` with `server.apiKey`.
 *
 * The server is loaded on first use, so importing the SDK does not load it (nor node-tar). The same function,
 * and the server's other exports (`DEFAULT_SUPPORTED_MODELS`, `FaultRule`, ...), are also the `tinker-ts/server`
 * entry point: `import { startLocalServer } from "tinker-ts/server"`.
 *
 * @throws {Error} if the port cannot be bound or the data directory cannot be used.
 * @example
 * ```ts
 * const server = await startLocalServer({ dataDir: "./.tinker-local" });
 * const service = new ServiceClient({ baseUrl: server.baseUrl, apiKey: server.apiKey });
 * // ... train, save, download ...
 * await service.close();
 * await server.close();
 * ```
 */
export async function startLocalServer(options: LocalServerOptions = {}): Promise<LocalServer> {
  const server = await import("./server/index.js");
  return server.startLocalServer(options);
}

/** A checkpoint as the service lists it (wire type: `checkpoint_id`, `tinker_path`, `size_bytes`, ...). */
export type Checkpoint = components["schemas"]["Checkpoint"];
/** A training run as the service describes it (wire type). */
export type TrainingRun = components["schemas"]["TrainingRun"];
/** Base model and LoRA configuration of a checkpoint (wire type). */
export type WeightsInfoResponse = components["schemas"]["WeightsInfoResponse"];
/** A page of checkpoints with its `cursor` (wire type). */
export type CheckpointsListResponse = components["schemas"]["CheckpointsListResponse"];
/** A page of training runs with its `cursor` (wire type). */
export type TrainingRunsResponse = components["schemas"]["TrainingRunsResponse"];
/** The generated OpenAPI bindings, for users who call endpoints directly with openapi-fetch. */
export type { components as WireSchemas, paths as WirePaths };
