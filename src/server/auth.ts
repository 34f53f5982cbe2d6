/**
 * Who is calling: API keys, and the short-lived JWTs of JWT mode (`pjwt_auth_enabled`, PROTOCOL §10.5).
 *
 * Each API key is a user. `POST /api/v1/auth/token` exchanges a valid credential for an HS256 JWT with
 * claims `sub` (the user's URN), `email`, `iat` and `exp`, signed with a key derived from the data directory's
 * URL signing key (so tokens survive restarts). A JWT is accepted on every route while it is unexpired and its
 * signature checks; an expired, forged or malformed one is a 401. In JWT mode an API key is accepted only where
 * the SDK sends it (`/api/v1/client/config`, `/api/v1/auth/token`) and on `/local/admin/*`; everywhere else it
 * is a 401 that says to exchange it, so a client that never uses its JWT fails visibly.
 *
 * @module
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { HttpError } from "./util.js";

/** Settings of {@link ServerAuth}. */
export interface ServerAuthOptions {
  /** API key → owner id. */
  keys: ReadonlyMap<string, string>;
  /** Whether plain API keys are refused outside the auth routes (JWT mode). */
  jwtMode: boolean;
  /** Secret the JWT signing key is derived from. */
  secret: Buffer;
  /** Lifetime of an issued JWT in seconds. */
  lifetimeSeconds: number;
  /** Clock in ms. */
  clock: () => number;
}

/** The claims of a JWT the local server issues. */
export interface LocalJwtClaims {
  sub: string;
  email: string;
  iat: number;
  exp: number;
  iss: string;
}

const URN_PREFIX = "urn:tinker-local:user:";
const ISSUER = "tinker-ts-local";
const KEY_ROUTES = new Set(["/api/v1/client/config", "/api/v1/auth/token"]);

/**
 * Authenticates requests for the local server and issues its JWTs.
 *
 * @example
 * ```ts
 * const keys = new Map([["tml-key", "user-1"]]);
 * const auth = new ServerAuth({ keys, jwtMode: true, secret: Buffer.alloc(32, 7), lifetimeSeconds: 3600, clock: Date.now });
 * const jwt = auth.issue(auth.ownerOf("tml-key", "/api/v1/auth/token"));
 * auth.ownerOf(jwt, "/api/v1/training_runs"); // the same owner
 * ```
 */
export class ServerAuth {
  readonly #o: ServerAuthOptions;
  readonly #signingKey: Buffer;

  /** Derives the signing key; sends and stores nothing. */
  constructor(options: ServerAuthOptions) {
    this.#o = options;
    this.#signingKey = createHmac("sha256", options.secret).update("tinker-ts local JWT signing key").digest();
  }

  /** Whether plain API keys are refused outside the auth routes. */
  get jwtMode(): boolean {
    return this.#o.jwtMode;
  }

  /**
   * The owner of `credential` on a request to `path`, or throws a 401 saying what is wrong.
   *
   * @throws {HttpError} 401 for a missing, unknown, expired or forged credential, or an API key where JWT mode wants a JWT.
   */
  ownerOf(credential: string | undefined, path: string): string {
    if (credential === undefined || credential === "") {
      throw new HttpError(401, "missing X-API-Key header; pass the server's API key (tinker-ts serve prints it)");
    }
    const owner = this.#o.keys.get(credential);
    if (owner !== undefined) {
      if (this.#o.jwtMode && !KEY_ROUTES.has(path) && !path.startsWith("/local/")) {
        throw new HttpError(
          401,
          "this server uses JWT auth: exchange the API key at POST /api/v1/auth/token and send the JWT as X-API-Key",
        );
      }
      return owner;
    }
    if (credential.startsWith("eyJ")) return this.verify(credential).sub.slice(URN_PREFIX.length);
    throw new HttpError(401, "invalid API key");
  }

  /** Like {@link ownerOf} but `undefined` instead of a 401. */
  tryOwnerOf(credential: string | undefined, path: string): string | undefined {
    try {
      return this.ownerOf(credential, path);
    } catch {
      return undefined;
    }
  }

  /** The owner a `weights_access_token` stands for: an API key, or a valid JWT of this server; else `undefined`. */
  tokenOwner(token: string): string | undefined {
    const owner = this.#o.keys.get(token);
    if (owner !== undefined) return owner;
    try {
      return this.verify(token).sub.slice(URN_PREFIX.length);
    } catch {
      return undefined;
    }
  }

  /** A signed JWT for `owner`, valid for the configured lifetime. */
  issue(owner: string): string {
    const now = Math.round(this.#o.clock()) / 1000; // NumericDate with ms precision, so sub-second lifetimes work
    const claims: LocalJwtClaims = {
      sub: `${URN_PREFIX}${owner}`,
      email: `${owner}@local.tinker`,
      iat: now,
      exp: Math.round((now + this.#o.lifetimeSeconds) * 1000) / 1000,
      iss: ISSUER,
    };
    const head = b64json({ alg: "HS256", typ: "JWT" });
    const body = b64json(claims);
    return `${head}.${body}.${this.#sign(`${head}.${body}`)}`;
  }

  /**
   * The claims of a JWT this server issued.
   *
   * @throws {HttpError} 401 when it is malformed, forged (bad signature) or expired.
   */
  verify(token: string): LocalJwtClaims {
    const parts = token.split(".");
    if (parts.length !== 3) throw new HttpError(401, "invalid JWT: not three parts");
    const [head, body, sig] = parts as [string, string, string];
    const expected = Buffer.from(this.#sign(`${head}.${body}`));
    const given = Buffer.from(sig);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) throw new HttpError(401, "invalid JWT: bad signature");
    let claims: LocalJwtClaims;
    try {
      claims = JSON.parse(Buffer.from(body, "base64url").toString("utf8")) as LocalJwtClaims;
    } catch {
      throw new HttpError(401, "invalid JWT: unreadable claims");
    }
    if (typeof claims.sub !== "string" || !claims.sub.startsWith(URN_PREFIX) || typeof claims.exp !== "number") {
      throw new HttpError(401, "invalid JWT: missing claims");
    }
    if (claims.exp * 1000 <= this.#o.clock())
      throw new HttpError(401, "JWT expired; exchange the credential again at POST /api/v1/auth/token");
    return claims;
  }

  #sign(input: string): string {
    return createHmac("sha256", this.#signingKey).update(input).digest("base64url");
  }
}

function b64json(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}
