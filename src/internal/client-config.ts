/**
 * The client config (`POST /api/v1/client/config`, PROTOCOL §10.3): read once per ServiceClient, before the
 * first request that depends on it. Every field has the service's default, so `{}` is a valid answer; unknown
 * keys are ignored; a field of the wrong type is a {@link ResponseValidationError}.
 *
 * @module
 */
import { z } from "zod";

const MiB = 1024 * 1024;

function field<T extends z.ZodType>(schema: T, fallback: z.output<T>) {
  return schema.nullish().transform((v) => (v === undefined || v === null ? fallback : v)) as unknown as z.ZodType<z.output<T>, unknown>;
}

const positiveInt = z.number().int().positive();

/** Zod schema of the client config, with every default of §4.2 applied. */
export const ClientConfigSchema = z.object({
  pjwt_auth_enabled: field(z.boolean(), false),
  credential_default_source: field(z.string(), "api_key"),
  sample_dispatch_bytes_semaphore_size: field(positiveInt, 10 * MiB),
  inflight_response_bytes_semaphore_size: field(positiveInt, 50 * MiB),
  parallel_fwdbwd_chunks: field(z.boolean(), true),
  proto_compress_fwdbwd: field(z.boolean(), false),
  fwdbwd_max_chunk_len: field(positiveInt, 1024),
  fwdbwd_max_chunk_bytes_count: field(positiveInt, 5_000_000),
  fwdbwd_dispatch_bytes_semaphore_size: field(positiveInt, 50_000_000),
  billing_exception_max_pause_duration_sec: field(z.number().nonnegative(), 3600),
  sample_no_retries: field(z.boolean(), false),
  sample_enable_stuck_detection: field(z.boolean(), true),
  sample_max_concurrent_requests: field(positiveInt, 2000),
  use_pyqwest_transport: field(z.boolean(), true),
  create_model_via_load_weights: field(z.boolean(), false),
});

/** The client config with every default applied. */
export type ClientConfig = z.output<typeof ClientConfigSchema>;

/**
 * The defaults (the config of a server that answers `{}`).
 *
 * @example
 * ```ts
 * DEFAULT_CLIENT_CONFIG.fwdbwd_max_chunk_len; // 1024
 * ```
 */
export const DEFAULT_CLIENT_CONFIG: ClientConfig = ClientConfigSchema.parse({});

/**
 * A byte budget shared by submits (`fwdbwd_dispatch_bytes_semaphore_size`): a submit is admitted while the
 * budget is ≥ 0, then its bytes are subtracted (the budget may go negative, so one oversized request still
 * goes), and given back when the submit (with its retries) ends. Waiters are admitted in arrival order.
 *
 * @example
 * ```ts
 * const budget = new ByteBudget(50_000_000);
 * const requestId = await budget.run(1_234_567, async () => "req-1"); // waits while the budget is below 0
 * ```
 */
export class ByteBudget {
  #available: number;
  readonly #waiters: (() => void)[] = [];

  /** A budget of `size` bytes. */
  constructor(size: number) {
    this.#available = size;
  }

  /** Bytes available now (negative while an oversized submit runs). */
  get available(): number {
    return this.#available;
  }

  /** Runs `fn` once the budget admits `bytes`; gives them back when `fn` settles. */
  async run<T>(bytes: number, fn: () => Promise<T>): Promise<T> {
    if (this.#available < 0 || this.#waiters.length > 0) {
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
    this.#available -= bytes;
    this.#wake();
    try {
      return await fn();
    } finally {
      this.#available += bytes;
      this.#wake();
    }
  }

  /** Wakes the next waiter while the budget admits; it subtracts its bytes and wakes the one after it. */
  #wake(): void {
    if (this.#available >= 0 && this.#waiters.length > 0) this.#waiters.shift()!();
  }
}
