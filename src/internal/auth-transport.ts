/**
 * Builds a {@link Transport} whose `X-API-Key` follows the service's auth mode ({@link ClientAuth}): the API key,
 * or in JWT mode a JWT exchanged at `POST /api/v1/auth/token` and kept fresh. Used by `ServiceClient`,
 * `RestClient.fromEnv` and the client that reads another account's checkpoint (`weightsAccessToken`).
 *
 * @module
 */
import { z } from "zod";
import { NotFoundError } from "../core/errors.js";
import { ClientAuth, type AuthLogger, type AuthMode } from "./auth.js";
import { ClientConfigSchema, type ClientConfig } from "./client-config.js";
import { Log } from "./log.js";
import { redact } from "./redact.js";
import { SDK_VERSION, Transport, type TransportConfig } from "./transport.js";

const AuthTokenResponseSchema = z.object({ jwt: z.string().min(1) });

/** Settings of {@link createAuthTransport}. */
export interface AuthTransportOptions extends Omit<TransportConfig, "auth" | "secrets"> {
  /** `TINKER_CREDENTIAL_CMD`, when set. */
  credentialCmd?: string | undefined;
  /** Reads the client config; default: one `POST /api/v1/client/config` on this transport. */
  loadConfig?: (transport: Transport) => Promise<ClientConfig>;
  /** Where `TINKER_LOG` is read when neither `log` nor `logLevel` is given (default `process.env`). */
  env?: NodeJS.ProcessEnv | undefined;
}

/**
 * Reads the client config once through `transport` (`POST /api/v1/client/config`).
 *
 * @example
 * ```ts
 * const config = await fetchClientConfig(transport);
 * config.pjwt_auth_enabled; // false unless the service uses JWT auth
 * ```
 */
export function fetchClientConfig(transport: Transport): Promise<ClientConfig> {
  return transport.call(
    "client_config",
    (init) => transport.api.POST("/api/v1/client/config", { body: { sdk_version: SDK_VERSION }, ...init }),
    ClientConfigSchema,
  );
}

/**
 * A transport authenticated as the client config says, and its {@link ClientAuth} (close it with the client).
 * A server without `/api/v1/client/config` (404) is treated as API-key mode.
 *
 * @throws {ConfigurationError} when the base URL or key is malformed.
 * @example
 * ```ts
 * const { transport, auth } = createAuthTransport({ baseUrl: "http://127.0.0.1:8080", apiKey: "tml-local" });
 * // ... transport.call(...) ...
 * auth.close();
 * ```
 */
export function createAuthTransport(options: AuthTransportOptions): { transport: Transport; auth: ClientAuth } {
  const { credentialCmd, loadConfig, env, ...config } = options;
  const secrets: string[] = [];
  // One log for the client: its warnings (failed refreshes) and the transport's debug lines and request events.
  const log = config.log ?? new Log({ logger: config.logger, logLevel: config.logLevel, env: env ?? process.env, secrets });
  let transport: Transport | undefined;
  const load = loadConfig ?? fetchClientConfig;
  const auth = new ClientAuth({
    apiKey: config.apiKey,
    credentialCmd,
    secrets,
    logger: { warn: (m: string) => log.warn(redact(m, secrets)) } satisfies AuthLogger,
    loadMode: () =>
      load(transport!).then(
        (c): AuthMode => ({ jwt: c.pjwt_auth_enabled, credentialSource: c.credential_default_source }),
        (err: unknown): AuthMode => {
          if (err instanceof NotFoundError) return { jwt: false, credentialSource: "api_key" };
          throw err;
        },
      ),
    exchange: async () => {
      const t = transport!;
      const res = await t.call("auth_token", (init) => t.api.POST("/api/v1/auth/token", { body: {}, ...init }), AuthTokenResponseSchema);
      return res.jwt;
    },
  });
  transport = new Transport({ ...config, auth, secrets, log });
  return { transport, auth };
}
