/**
 * zstd compression of protobuf `forward_backward` bodies (`proto_compress_fwdbwd`, PROTOCOL §10.1). Node has
 * zstd from 22.15 (`zlib.zstdCompressSync`); on older runtimes (Node 20) bodies are sent uncompressed, which
 * every server accepts.
 *
 * @module
 */
import * as zlib from "node:zlib";

type ZstdCompress = (buf: Uint8Array) => Buffer;

const zstdCompressSync = (zlib as unknown as { zstdCompressSync?: ZstdCompress }).zstdCompressSync;

/** Whether this runtime can compress with zstd. */
export const ZSTD_AVAILABLE: boolean = typeof zstdCompressSync === "function";

/**
 * The body to send and its `Content-Encoding`: a zstd frame when `compress` is asked and the runtime has zstd,
 * else the body unchanged (no encoding).
 *
 * @example
 * ```ts
 * const { body, encoding } = compressFwdbwdBody(new Uint8Array([1, 2, 3]), true);
 * // encoding === "zstd" on Node ≥ 22.15, undefined on Node 20
 * ```
 */
export function compressFwdbwdBody(body: Uint8Array, compress: boolean): { body: Uint8Array; encoding: "zstd" | undefined } {
  if (!compress || zstdCompressSync === undefined) return { body, encoding: undefined };
  return { body: zstdCompressSync(body), encoding: "zstd" };
}
