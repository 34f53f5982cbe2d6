/**
 * Compile-time proof (checked by `tsc --noEmit`, never run) that every zod schema in `src/internal/schemas.ts`
 * infers exactly the generated wire type: each `z.infer<typeof XxxSchema>` is assignable to
 * `components["schemas"]["Xxx"]` and back. A mismatch fails the typecheck on the line naming the schema.
 */
import type { z } from "zod";
import type { components } from "../generated/schema.js";
import type * as S from "../src/internal/schemas.js";

type Wire = components["schemas"];

/** Compiles only when `B` is assignable to `A`. */
type AssertAssignable<A, B extends A> = [A, B];

/** `true` when A and B are mutually assignable, else `false`. */
type MutuallyAssignable<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

/** One entry per schema: must be `true`. */
type Checks = {
  UntypedAPIFuture: MutuallyAssignable<z.infer<typeof S.UntypedAPIFutureSchema>, Wire["UntypedAPIFuture"]>;
  CreateSessionResponse: MutuallyAssignable<z.infer<typeof S.CreateSessionResponseSchema>, Wire["CreateSessionResponse"]>;
  SessionHeartbeatResponse: MutuallyAssignable<z.infer<typeof S.SessionHeartbeatResponseSchema>, Wire["SessionHeartbeatResponse"]>;
  ClientConfigResponse: MutuallyAssignable<z.infer<typeof S.ClientConfigResponseSchema>, Wire["ClientConfigResponse"]>;
  DynamicConfigResponse: MutuallyAssignable<z.infer<typeof S.DynamicConfigResponseSchema>, Wire["DynamicConfigResponse"]>;
  TelemetryResponse: MutuallyAssignable<z.infer<typeof S.TelemetryResponseSchema>, Wire["TelemetryResponse"]>;
  SupportedModel: MutuallyAssignable<z.infer<typeof S.SupportedModelSchema>, Wire["SupportedModel"]>;
  GetServerCapabilitiesResponse: MutuallyAssignable<
    z.infer<typeof S.GetServerCapabilitiesResponseSchema>,
    Wire["GetServerCapabilitiesResponse"]
  >;
  HealthResponse: MutuallyAssignable<z.infer<typeof S.HealthResponseSchema>, Wire["HealthResponse"]>;
  CreateModelResponse: MutuallyAssignable<z.infer<typeof S.CreateModelResponseSchema>, Wire["CreateModelResponse"]>;
  ModelData: MutuallyAssignable<z.infer<typeof S.ModelDataSchema>, Wire["ModelData"]>;
  GetInfoResponse: MutuallyAssignable<z.infer<typeof S.GetInfoResponseSchema>, Wire["GetInfoResponse"]>;
  UnloadModelResponse: MutuallyAssignable<z.infer<typeof S.UnloadModelResponseSchema>, Wire["UnloadModelResponse"]>;
  TensorData: MutuallyAssignable<z.infer<typeof S.TensorDataSchema>, Wire["TensorData"]>;
  ForwardBackwardOutput: MutuallyAssignable<z.infer<typeof S.ForwardBackwardOutputSchema>, Wire["ForwardBackwardOutput"]>;
  OptimStepResponse: MutuallyAssignable<z.infer<typeof S.OptimStepResponseSchema>, Wire["OptimStepResponse"]>;
  SaveWeightsResponse: MutuallyAssignable<z.infer<typeof S.SaveWeightsResponseSchema>, Wire["SaveWeightsResponse"]>;
  LoadWeightsResponse: MutuallyAssignable<z.infer<typeof S.LoadWeightsResponseSchema>, Wire["LoadWeightsResponse"]>;
  SaveWeightsForSamplerResponseInternal: MutuallyAssignable<
    z.infer<typeof S.SaveWeightsForSamplerResponseInternalSchema>,
    Wire["SaveWeightsForSamplerResponseInternal"]
  >;
  SaveWeightsForSamplerResponse: MutuallyAssignable<
    z.infer<typeof S.SaveWeightsForSamplerResponseSchema>,
    Wire["SaveWeightsForSamplerResponse"]
  >;
  CreateSamplingSessionResponse: MutuallyAssignable<
    z.infer<typeof S.CreateSamplingSessionResponseSchema>,
    Wire["CreateSamplingSessionResponse"]
  >;
  GetSamplerResponse: MutuallyAssignable<z.infer<typeof S.GetSamplerResponseSchema>, Wire["GetSamplerResponse"]>;
  QueueState: MutuallyAssignable<z.infer<typeof S.QueueStateSchema>, Wire["QueueState"]>;
  TryAgainResponse: MutuallyAssignable<z.infer<typeof S.TryAgainResponseSchema>, Wire["TryAgainResponse"]>;
  RequestFailedResponse: MutuallyAssignable<z.infer<typeof S.RequestFailedResponseSchema>, Wire["RequestFailedResponse"]>;
  MetadataOnlyResponse: MutuallyAssignable<z.infer<typeof S.MetadataOnlyResponseSchema>, Wire["MetadataOnlyResponse"]>;
  WeightsInfoResponse: MutuallyAssignable<z.infer<typeof S.WeightsInfoResponseSchema>, Wire["WeightsInfoResponse"]>;
  CheckpointType: MutuallyAssignable<z.infer<typeof S.CheckpointTypeSchema>, Wire["CheckpointType"]>;
  Checkpoint: MutuallyAssignable<z.infer<typeof S.CheckpointSchema>, Wire["Checkpoint"]>;
  Cursor: MutuallyAssignable<z.infer<typeof S.CursorSchema>, Wire["Cursor"]>;
  CheckpointsListResponse: MutuallyAssignable<z.infer<typeof S.CheckpointsListResponseSchema>, Wire["CheckpointsListResponse"]>;
  TrainingRun: MutuallyAssignable<z.infer<typeof S.TrainingRunSchema>, Wire["TrainingRun"]>;
  TrainingRunsResponse: MutuallyAssignable<z.infer<typeof S.TrainingRunsResponseSchema>, Wire["TrainingRunsResponse"]>;
  CheckpointArchiveUrlResponse: MutuallyAssignable<
    z.infer<typeof S.CheckpointArchiveUrlResponseSchema>,
    Wire["CheckpointArchiveUrlResponse"]
  >;
  ListSessionsResponse: MutuallyAssignable<z.infer<typeof S.ListSessionsResponseSchema>, Wire["ListSessionsResponse"]>;
  GetSessionResponse: MutuallyAssignable<z.infer<typeof S.GetSessionResponseSchema>, Wire["GetSessionResponse"]>;
  ErrorResponse: MutuallyAssignable<z.infer<typeof S.ErrorResponseSchema>, Wire["ErrorResponse"]>;
};

/** Every key of `Checks` whose value is not `true`; must be `never`. */
type Failing = { [K in keyof Checks]: Checks[K] extends true ? never : K }[keyof Checks];

/** Fails to compile, naming the failing schemas, unless `Failing` is `never`. */
export const allSchemasMatchTheSpec: [Failing] extends [never] ? true : `schema differs from the spec: ${Failing}` = true;

/** Every exported schema must have a check above: a schema export without one fails here. */
type SchemaNames = { [K in keyof typeof S]: K extends `${infer N}Schema` ? N : never }[keyof typeof S];
export const everySchemaIsChecked: [Exclude<SchemaNames, keyof Checks>] extends [never]
  ? true
  : `schema without a check: ${Exclude<SchemaNames, keyof Checks>}` = true;

// Sanity checks of the helpers themselves (a mismatch must be detected).
type _Detects = [
  AssertAssignable<false, MutuallyAssignable<{ a?: string }, { a: string }>>,
  AssertAssignable<false, MutuallyAssignable<{ a: string | null }, { a: string }>>,
  AssertAssignable<true, MutuallyAssignable<{ a?: string | null }, { a?: string | null | undefined }>>,
];
export type { _Detects };
