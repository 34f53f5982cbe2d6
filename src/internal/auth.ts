/**
 * Credentials (PROTOCOL §2.1, §10.5): which credential goes in `X-API-Key` on each request.
 *
 * - Without JWT mode every request sends the API key.
 * - With `pjwt_auth_enabled` in the client config, the credential (the API key, or what `TINKER_CREDENTIAL_CMD`
 *   prints) is exchanged at `POST /api/v1/auth/token` for a short-lived JWT, which every other request sends.
 *   The JWT is refreshed in the background before it expires and on demand when it is about to; a failed
 *   refresh keeps the old token (the request then surfaces the server's answer).
 * - The client config and the exchange itself always use the credential, never the JWT.
 *
 * Every credential and token ever used is added to `secrets`, which every error redacts.
 *
 * @module
 */
import { spawn } from "node:child_process";
import { IDEMPOTENCY_KEY_HEADER, newIdempotencyKey } from "./retry.js";
import { ConfigurationError, TinkerError } from "../core/errors.js";

/** What the client config says about auth (PROTOCOL §10.3). */
export interface AuthMode {
  /** `pjwt_auth_enabled`. */
  jwt: boolean;
  /** `credential_default_source`: `"api_key"` (default) or `"credential_cmd"`. */
  credentialSource: string;
}

/** How {@link ClientAuthOptions.exchange} is called. */
export interface ExchangeOptions {
  /** The proactive refresh, which nobody awaits (else a request needs the token now). */
  background: boolean;
  /** Aborted when the client closes. */
  signal: AbortSignal;
}

/** Where warnings go. */
export interface AuthLogger {
  warn(message: string): void;
}

/** Settings of {@link ClientAuth}. */
export interface ClientAuthOptions {
  /** The API key (`tml-…` or a JWT `eyJ…`), when configured. */
  apiKey?: string | undefined;
  /** `TINKER_CREDENTIAL_CMD`: a shell command that prints a credential, run each time one is needed. */
  credentialCmd?: string | undefined;
  /** Reads the client config (once; a failure is retried by the next request). */
  loadMode: () => Promise<AuthMode>;
  /**
   * `POST /api/v1/auth/token` `{}`; returns the JWT. Sent with {@link ClientAuth.credentialFor}'s answer for that
   * path. A `background` exchange (the proactive refresh) must be short-lived: one attempt, a short timeout, no
   * billing pause, abandoned when `signal` aborts, so it never keeps a finished script alive.
   */
  exchange: (how: ExchangeOptions) => Promise<string>;
  /** Secrets every error redacts; credentials and tokens are appended as they appear. */
  secrets: string[];
  /** Where warnings go (failed refreshes, a credential command that exited non-zero). */
  logger?: AuthLogger;
  /** Clock in ms (default `Date.now`). */
  now?: () => number;
}

/** Refresh in the background this long before `exp` (as the Python SDK), at most half the token's lifetime. */
export const JWT_REFRESH_AHEAD_MS = 300_000;
/** Refresh on demand when this little remains (as the Python SDK), at most a quarter of the token's lifetime. */
export const JWT_REFRESH_ON_DEMAND_MS = 60_000;
/** After a failed background refresh, try again after this long. */
export const JWT_RETRY_AFTER_FAILURE_MS = 60_000;

const CONFIG_PATH = /\/api\/v1\/client\/config$/;
const TOKEN_PATH = /\/api\/v1\/auth\/token$/;

/**
 * Decodes the claims (payload) of a JWT without verifying it.
 *
 * @throws {TinkerError} when `jwt` is not three dot-separated parts whose second is base64url JSON.
 * @example
 * ```ts
 * const token = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1cm46dXNlcjoxIn0.sig";
 * const { sub } = decodeJwtClaims(token); // "urn:user:1"
 * ```
 */
export function decodeJwtClaims(jwt: string): Record<string, unknown> {
  const part = jwt.split(".")[1];
  try {
    if (part === undefined || jwt.split(".").length !== 3) throw new Error("not three parts");
    const claims: unknown = JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
    if (claims === null || typeof claims !== "object" || Array.isArray(claims)) throw new Error("the payload is not a JSON object");
    return claims as Record<string, unknown>;
  } catch (err) {
    throw new TinkerError(`The token is not a decodable JWT (${err instanceof Error ? err.message : String(err)}).`);
  }
}

/**
 * The `exp` claim of a JWT in ms since the epoch, or `undefined` when it has none or cannot be decoded.
 *
 * @example
 * ```ts
 * const expiresAt = jwtExpiryMs("eyJhbGciOiJub25lIn0.eyJleHAiOjE3NjcyMjU2MDB9.sig"); // 1767225600000
 * ```
 */
export function jwtExpiryMs(jwt: string): number | undefined {
  try {
    const exp = Number(decodeJwtClaims(jwt)["exp"]);
    return Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Runs `TINKER_CREDENTIAL_CMD` in a shell and returns what it printed (trimmed). A non-zero exit with output is
 * used, with a warning naming the exit code (never the output), as the Python SDK uses it (decision 15).
 *
 * @throws {ConfigurationError} when the command prints nothing, cannot be started, or runs longer than 60 s.
 * @example
 * ```ts
 * const credential = await runCredentialCommand("vault read -field=key secret/tinker");
 * ```
 */
export function runCredentialCommand(cmd: string, logger?: AuthLogger): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, { shell: true, stdio: ["ignore", "pipe", "ignore"], timeout: 60_000 });
    const chunks: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => chunks.push(c));
    child.on("error", (err) =>
      reject(new ConfigurationError(`TINKER_CREDENTIAL_CMD could not be run (${err.message}); check the command.`)),
    );
    child.on("close", (code, signal) => {
      const out = Buffer.concat(chunks).toString("utf8").trim();
      if (out === "") {
        const how = signal !== null ? `was stopped by ${signal}` : `exited with code ${String(code)}`;
        reject(
          new ConfigurationError(
            `TINKER_CREDENTIAL_CMD printed no credential (it ${how}); it must print a Tinker API key or token on stdout.`,
          ),
        );
        return;
      }
      if (code !== 0)
        logger?.warn(
          `tinker-ts: TINKER_CREDENTIAL_CMD exited with code ${String(code ?? signal)}; using what it printed as the credential.`,
        );
      resolve(out);
    });
  });
}

/** What {@link sendAuthenticated} needs of a {@link ClientAuth}. */
export interface RequestAuth {
  /** The credential for a request to `path`. */
  credentialFor(path: string): Promise<string>;
  /** A credential to resend a request refused with 401 with, or `undefined` (JWT mode: after one forced token refresh; API-key mode: never). */
  renewAfterRejection?(path: string, rejected: string): Promise<string | undefined>;
}

/**
 * Sends `req` with the credential `auth` chooses for its path (as `X-API-Key`). If the answer is a 401 and `auth`
 * has a renewed credential (JWT mode: the token was revoked or expired early), the request is sent once more with
 * it: the same body bytes and the same idempotency key, which is safe because a 401 was not applied. A second 401
 * is returned as is (no loop). `send` is the retrying fetch; it receives the idempotency key to use on non-GET
 * requests.
 *
 * @example
 * ```ts
 * const auth = new ClientAuth({
 *   apiKey: "tml-local",
 *   secrets: [],
 *   loadMode: async () => ({ jwt: true, credentialSource: "api_key" }),
 *   exchange: async () => "eyJ...",
 * });
 * const res = await sendAuthenticated(auth, new Request(`${baseUrl}/api/v1/training_runs`), (req) => fetch(req));
 * ```
 */
export async function sendAuthenticated(
  auth: RequestAuth,
  req: Request,
  send: (req: Request, idempotencyKey: string | undefined) => Promise<Response>,
  debug?: (message: string) => void,
): Promise<Response> {
  const path = new URL(req.url).pathname;
  const credential = await auth.credentialFor(path);
  req.headers.set("X-API-Key", credential);
  // Only a JWT can be renewed (an API key cannot): other requests go as they are.
  if (auth.renewAfterRejection === undefined || !credential.startsWith("eyJ")) return send(req, undefined);
  // Keep what a resend needs: the body bytes, and one idempotency key for both sends.
  const body = req.body === null ? null : await req.arrayBuffer();
  const idempotent = req.method === "GET" || req.method === "HEAD";
  const key = idempotent ? undefined : (req.headers.get(IDEMPOTENCY_KEY_HEADER) ?? newIdempotencyKey());
  const copy = (credentialValue: string): Request => {
    const headers = new Headers(req.headers);
    headers.set("X-API-Key", credentialValue);
    return new Request(req.url, { method: req.method, headers, body, redirect: req.redirect, signal: req.signal });
  };
  const first = await send(copy(credential), key);
  if (first.status !== 401) return first;
  const renewed = await auth.renewAfterRejection(path, credential);
  if (renewed === undefined) return first;
  await first.body?.cancel().catch(() => undefined);
  debug?.(`${req.method} ${path}: 401 Unauthorized; refreshed the auth token and sending the request once more`);
  return send(copy(renewed), key);
}

/**
 * Chooses the credential of each request and keeps the JWT of JWT mode fresh. One per client (ServiceClient,
 * RestClient.fromEnv); {@link close} stops its background refresh.
 *
 * @example
 * ```ts
 * const auth = new ClientAuth({
 *   apiKey: "tml-local",
 *   secrets: [],
 *   loadMode: async () => ({ jwt: false, credentialSource: "api_key" }),
 *   exchange: async () => "eyJ...",
 * });
 * const key = await auth.credentialFor("/api/v1/training_runs"); // the API key, or a fresh JWT in JWT mode
 * ```
 */
export class ClientAuth {
  readonly #o: ClientAuthOptions;
  readonly #now: () => number;
  #mode: Promise<AuthMode> | undefined;
  #token: string | undefined;
  #obtainedAt = 0;
  #refreshing: Promise<string> | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  readonly #closing = new AbortController();

  /** Sends nothing until the first request. */
  constructor(options: ClientAuthOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    if (options.apiKey !== undefined) options.secrets.push(options.apiKey);
  }

  /** The credential to send as `X-API-Key` on a request to `path`. */
  async credentialFor(path: string): Promise<string> {
    if (CONFIG_PATH.test(path)) return this.#keyOrCommand();
    if (TOKEN_PATH.test(path)) return this.#exchangeCredential();
    const mode = await this.mode();
    if (!mode.jwt) {
      if (this.#o.apiKey === undefined) {
        throw new ConfigurationError(
          "This server does not use JWT auth, so it needs an API key: set TINKER_API_KEY (or pass apiKey); TINKER_CREDENTIAL_CMD is only used to obtain JWTs.",
        );
      }
      return this.#o.apiKey;
    }
    return this.jwt();
  }

  /** The auth mode of the client config (read once; a 404 means the defaults: API key mode). */
  mode(): Promise<AuthMode> {
    if (this.#mode === undefined) {
      const p = this.#o.loadMode();
      p.catch(() => {
        if (this.#mode === p) this.#mode = undefined;
      });
      this.#mode = p;
    }
    return this.#mode;
  }

  /** The current JWT of JWT mode, exchanged or refreshed first when none is held or it is about to expire. */
  async jwt(): Promise<string> {
    const token = this.#token;
    if (token !== undefined && !this.#nearExpiry(token)) return token;
    try {
      return await this.#refresh();
    } catch (err) {
      if (token === undefined) throw err;
      this.#o.logger?.warn(
        `tinker-ts: refreshing the auth token failed (${err instanceof Error ? err.message : String(err)}); using the current one.`,
      );
      return token;
    }
  }

  /**
   * The JWT that carries the caller's identity: in JWT mode the exchanged one (obtained first if needed), else
   * the API key when it is itself a JWT; `undefined` otherwise.
   */
  async identityToken(): Promise<string | undefined> {
    const mode = await this.mode();
    if (mode.jwt) return this.jwt();
    const key = this.#o.apiKey;
    return key?.startsWith("eyJ") === true ? key : undefined;
  }

  /**
   * After the server answered 401 to a request to `path` sent with `rejected`: in JWT mode, a fresh JWT to resend
   * it with once (the token may have been revoked or have expired early by the server's clock). Another request
   * may already have replaced `rejected`; then that token is returned without a new exchange. `undefined` when a
   * resend cannot help: not JWT mode, the config or exchange route, or the refresh failed (logged, without it).
   */
  async renewAfterRejection(path: string, rejected: string): Promise<string | undefined> {
    if (CONFIG_PATH.test(path) || TOKEN_PATH.test(path)) return undefined;
    const mode = await this.mode().catch(() => undefined);
    if (mode?.jwt !== true) return undefined;
    if (this.#token !== undefined && this.#token !== rejected) return this.#token;
    try {
      return await this.#refresh();
    } catch (err) {
      this.#o.logger?.warn(
        `tinker-ts: refreshing the auth token after a 401 failed (${err instanceof Error ? err.message : String(err)}); the request is not resent.`,
      );
      return undefined;
    }
  }

  /** The JWT held now (no request), if any. */
  get currentToken(): string | undefined {
    return this.#token;
  }

  /** Stops the background refresh. */
  close(): void {
    this.#closed = true;
    this.#closing.abort();
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #lifetime(token: string): { expiresAt: number | undefined; lifetime: number } {
    const expiresAt = jwtExpiryMs(token);
    return { expiresAt, lifetime: expiresAt === undefined ? 0 : Math.max(0, expiresAt - this.#obtainedAt) };
  }

  #nearExpiry(token: string): boolean {
    const { expiresAt, lifetime } = this.#lifetime(token);
    if (expiresAt === undefined) return true; // an unparseable exp: refresh on every request, as the SDK does
    return expiresAt - this.#now() <= Math.min(JWT_REFRESH_ON_DEMAND_MS, lifetime / 4);
  }

  #refresh(background = false): Promise<string> {
    if (this.#refreshing === undefined) {
      const p = this.#o.exchange({ background, signal: this.#closing.signal }).then((jwt) => {
        if (typeof jwt !== "string" || jwt === "") throw new TinkerError("POST /api/v1/auth/token answered without a JWT.");
        this.#o.secrets.push(jwt);
        this.#token = jwt;
        this.#obtainedAt = this.#now();
        this.#schedule(jwt);
        return jwt;
      });
      const clear = (): void => {
        if (this.#refreshing === p) this.#refreshing = undefined;
      };
      p.then(clear, clear);
      this.#refreshing = p;
    }
    return this.#refreshing;
  }

  #schedule(token: string): void {
    if (this.#closed) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    const { expiresAt, lifetime } = this.#lifetime(token);
    const delay =
      expiresAt === undefined
        ? JWT_RETRY_AFTER_FAILURE_MS
        : Math.max(expiresAt - this.#now() - Math.min(JWT_REFRESH_AHEAD_MS, lifetime / 2), 0);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      // One short attempt: a refresh that fails (the service is away) must not keep the process alive retrying;
      // it is tried again in 60 s (an unref'd timer), and a request refreshes on demand anyway.
      this.#refresh(true).catch((err: unknown) => {
        if (this.#closed) return;
        this.#o.logger?.warn(
          `tinker-ts: background refresh of the auth token failed (${err instanceof Error ? err.message : String(err)}); retrying in 60 s.`,
        );
        this.#timer = setTimeout(() => {
          this.#timer = undefined;
          if (!this.#closed && this.#token !== undefined) this.#schedule(this.#token);
        }, JWT_RETRY_AFTER_FAILURE_MS);
        this.#timer.unref();
      });
    }, delay);
    this.#timer.unref();
  }

  /** The credential of the config fetch: the API key, else the command. */
  async #keyOrCommand(): Promise<string> {
    if (this.#o.apiKey !== undefined) return this.#o.apiKey;
    return this.#command();
  }

  /** The credential exchanged for a JWT (PROTOCOL §10.5). */
  async #exchangeCredential(): Promise<string> {
    const key = this.#o.apiKey;
    if (key?.startsWith("eyJ") === true) return key;
    const mode = await this.mode();
    if (mode.credentialSource === "credential_cmd") {
      if (this.#o.credentialCmd === undefined) {
        throw new ConfigurationError(
          "This Tinker deployment requires dynamic credentials: set TINKER_CREDENTIAL_CMD to a command that prints a valid credential.",
        );
      }
      return this.#command();
    }
    return this.#keyOrCommand();
  }

  async #command(): Promise<string> {
    const cmd = this.#o.credentialCmd;
    if (cmd === undefined) {
      throw new ConfigurationError(
        "No credential: set TINKER_API_KEY (or pass apiKey), or TINKER_CREDENTIAL_CMD to a command that prints one.",
      );
    }
    const out = await runCredentialCommand(cmd, this.#o.logger);
    if (!this.#o.secrets.includes(out)) this.#o.secrets.push(out);
    return out;
  }
}
