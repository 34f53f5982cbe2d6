/**
 * The free names that TSDoc examples use without defining them (`service`, `rest`, `training`, ...), with
 * their types. The files that scripts/examples.ts generates in test/tsdoc-examples/ import them from here.
 * Type-checked only: nothing here exists at run time.
 *
 * @example
 * ```ts
 * import { rest, tinkerPath } from "./example-prelude.js";
 * await rest.getWeightsInfoByTinkerPath(tinkerPath);
 * ```
 */
import type { APIFuture, CheckpointLedger, Datum, RestClient, SamplingClient, ServiceClient, TrainingClient } from "../../src/index.js";
import type { Transport } from "../../src/internal/transport.js";
import type { CliIO } from "../../src/cli/util.js";

export declare const service: ServiceClient;
export declare const rest: RestClient;
export declare const training: TrainingClient;
export declare const transport: Transport;
export declare const runId: string;
export declare const tinkerPath: string;
export declare const url: string;
export declare const future: APIFuture<unknown>;
export declare const argv: string[];
export declare const json: unknown;
export declare const ledger: CheckpointLedger;
export declare const batch: Datum[];
export declare const io: CliIO;
export declare const response: Response;
export declare const baseUrl: string;
export declare const source: AsyncIterable<Buffer>;
export declare const signal: AbortSignal;
export declare const sampler: SamplingClient;
