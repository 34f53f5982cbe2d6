/**
 * Where the SDK connects: the one place that reads `TINKER_BASE_URL` / `TINKER_API_KEY`, used by
 * `ServiceClient`, `RestClient.fromEnv` and the CLI.
 *
 * @module
 */
import { ConfigurationError } from "../core/errors.js";

/** The Tinker service, used when only an API key is configured (as the Python SDK does). */
export const DEFAULT_BASE_URL = "https://tinker.thinkingmachines.dev/services/tinker-prod";

/** A resolved connection. */
export interface Connection {
  baseUrl: string;
  apiKey: string;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value.trim();
}

/**
 * Resolves the base URL and API key from options, then `TINKER_BASE_URL` / `TINKER_API_KEY`. With a key but no
 * URL, the Tinker service is used. The key must start with `tml-` or be a JWT (`eyJ…`). Messages never contain
 * the key.
 *
 * @throws {ConfigurationError} when nothing is configured (saying how to start the local server), the key is
 *   missing, or the key is malformed.
 * @example
 * ```ts
 * const { baseUrl, apiKey } = resolveConnection({}, process.env);
 * ```
 */
export function resolveConnection(options: { baseUrl?: string | undefined; apiKey?: string | undefined }, env: NodeJS.ProcessEnv = process.env): Connection {
  const baseUrl = nonEmpty(options.baseUrl) ?? nonEmpty(env["TINKER_BASE_URL"]);
  const apiKey = nonEmpty(options.apiKey) ?? nonEmpty(env["TINKER_API_KEY"]);
  if (baseUrl === undefined && apiKey === undefined) {
    throw new ConfigurationError(
      "No Tinker server configured: TINKER_BASE_URL and TINKER_API_KEY are not set. For offline work start the bundled local server with `npx tinker-ts serve` and export the TINKER_BASE_URL and TINKER_API_KEY it prints; for the Tinker service export both (or pass { baseUrl, apiKey }).",
    );
  }
  if (apiKey === undefined) {
    throw new ConfigurationError(
      "TINKER_API_KEY is not set (or pass { apiKey }). The local server prints its key when it starts (`npx tinker-ts serve`).",
    );
  }
  if (!apiKey.startsWith("tml-") && !apiKey.startsWith("eyJ")) {
    throw new ConfigurationError("The API key must start with 'tml-' (or be a JWT); check TINKER_API_KEY.");
  }
  return { baseUrl: baseUrl ?? DEFAULT_BASE_URL, apiKey };
}
