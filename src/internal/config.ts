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
export function resolveConnection(
  options: { baseUrl?: string | undefined; apiKey?: string | undefined },
  env: NodeJS.ProcessEnv = process.env,
): Connection {
  const { baseUrl, apiKey } = resolveCredentials(options, { ...env, TINKER_CREDENTIAL_CMD: undefined });
  return { baseUrl, apiKey: apiKey! };
}

/** A resolved connection whose credential may come from `TINKER_CREDENTIAL_CMD` instead of a key. */
export interface CredentialConnection {
  baseUrl: string;
  apiKey: string | undefined;
  /** `TINKER_CREDENTIAL_CMD`, when set. */
  credentialCmd: string | undefined;
}

/**
 * Like {@link resolveConnection}, but a missing API key is fine when `TINKER_CREDENTIAL_CMD` is set (the command
 * then supplies the credential, PROTOCOL §10.5).
 *
 * @throws {ConfigurationError} as {@link resolveConnection} does.
 * @example
 * ```ts
 * const { baseUrl, apiKey, credentialCmd } = resolveCredentials({}, process.env);
 * ```
 */
export function resolveCredentials(
  options: { baseUrl?: string | undefined; apiKey?: string | undefined },
  env: NodeJS.ProcessEnv = process.env,
): CredentialConnection {
  const baseUrl = nonEmpty(options.baseUrl) ?? nonEmpty(env["TINKER_BASE_URL"]);
  const apiKey = nonEmpty(options.apiKey) ?? nonEmpty(env["TINKER_API_KEY"]);
  const credentialCmd = nonEmpty(env["TINKER_CREDENTIAL_CMD"]);
  if (apiKey === undefined && credentialCmd !== undefined) return { baseUrl: baseUrl ?? DEFAULT_BASE_URL, apiKey, credentialCmd };
  if (baseUrl === undefined && apiKey === undefined) {
    throw new ConfigurationError(
      "No Tinker server configured: TINKER_BASE_URL and TINKER_API_KEY are not set. For offline work start the bundled local server with `npx tinker-ts serve` and export the TINKER_BASE_URL and TINKER_API_KEY it prints; for the Tinker service export both (or pass { baseUrl, apiKey }).",
    );
  }
  if (apiKey === undefined) {
    throw new ConfigurationError(
      "TINKER_API_KEY is not set (or pass { apiKey }, or set TINKER_CREDENTIAL_CMD to a command that prints a credential). The local server prints its key when it starts (`npx tinker-ts serve`).",
    );
  }
  if (!apiKey.startsWith("tml-") && !apiKey.startsWith("eyJ")) {
    throw new ConfigurationError("The API key must start with 'tml-' (or be a JWT); check TINKER_API_KEY.");
  }
  return { baseUrl: baseUrl ?? DEFAULT_BASE_URL, apiKey, credentialCmd };
}

/**
 * The Cloudflare Access headers of a deployment behind Cloudflare Access: `CF-Access-Client-Id` and
 * `CF-Access-Client-Secret` from `CLOUDFLARE_ACCESS_CLIENT_ID` / `CLOUDFLARE_ACCESS_CLIENT_SECRET` (each only
 * when set), as the Python SDK sends them. They go to the service only, never to a download host.
 *
 * @example
 * ```ts
 * cloudflareAccessHeaders({ CLOUDFLARE_ACCESS_CLIENT_ID: "id.access", CLOUDFLARE_ACCESS_CLIENT_SECRET: "s3cret" });
 * // { "CF-Access-Client-Id": "id.access", "CF-Access-Client-Secret": "s3cret" }
 * ```
 */
export function cloudflareAccessHeaders(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  const id = nonEmpty(env["CLOUDFLARE_ACCESS_CLIENT_ID"]);
  const secret = nonEmpty(env["CLOUDFLARE_ACCESS_CLIENT_SECRET"]);
  if (id !== undefined) out["CF-Access-Client-Id"] = id;
  if (secret !== undefined) out["CF-Access-Client-Secret"] = secret;
  return out;
}
