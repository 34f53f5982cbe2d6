/**
 * The account side of {@link RestClient}: who is calling (`whoami`), and the admin calls on sessions, the audit
 * log and billing. `RestClient` extends {@link RestAccountClient}, so these are `rest.whoami()` etc.
 *
 * @module
 */
import { TinkerError } from "./core/errors.js";
import { decodeJwtClaims } from "./internal/auth.js";
import type { Transport } from "./internal/transport.js";

/** Who the credential in use belongs to (decoded from its JWT, without a request). */
export interface WhoamiResponse {
  /** URN of the calling principal (the JWT's `sub`). */
  user_urn: string;
  /** Email of the calling user, when the principal is user-backed (`null` otherwise). */
  email: string | null;
}

/**
 * Base of {@link RestClient}: holds the transport and the account calls.
 *
 * @example
 * ```ts
 * const { user_urn, email } = await rest.whoami();
 * ```
 */
export class RestAccountClient {
  /** The transport every call goes through. */
  readonly transport: Transport;

  /**
   * Wraps `transport`. Sends nothing.
   *
   * @example
   * ```ts
   * import { Transport } from "./internal/transport.js";
   *
   * const account = new RestAccountClient(new Transport({ baseUrl: "http://127.0.0.1:8080", apiKey: "tml-local" }));
   * ```
   */
  constructor(transport: Transport) {
    this.transport = transport;
  }

  /**
   * Who the credential in use belongs to: `sub` (as `user_urn`) and `email` decoded from the JWT the client holds
   * in JWT mode, or from an API key that is itself a JWT. Makes no request once the JWT is held (the first call
   * in JWT mode may read the client config and exchange the credential).
   *
   * @throws {TinkerError} when there is no JWT: the service is not in JWT mode and the API key is a `tml-` key.
   * @example
   * ```ts
   * const me = await rest.whoami();
   * console.log(me.user_urn, me.email ?? "(no email)");
   * ```
   */
  async whoami(): Promise<WhoamiResponse> {
    const token = await this.transport.auth?.identityToken();
    if (token === undefined) {
      throw new TinkerError(
        "whoami reads the caller's identity from a JWT, and this client holds none: the service does not use JWT auth and the API key is not a JWT. The key's owner is shown in the service's console.",
      );
    }
    const claims = decodeJwtClaims(token);
    const sub = claims["sub"];
    if (typeof sub !== "string" || sub === "") throw new TinkerError("The JWT in use has no `sub` claim, so it names no principal.");
    const email = claims["email"];
    return { user_urn: sub, email: typeof email === "string" && email !== "" ? email : null };
  }
}
