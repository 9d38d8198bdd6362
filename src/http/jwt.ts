import { createRemoteJWKSet, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { Context } from 'koa';
import type { Identity } from '../identity.js';

export interface JwtOptions {
  /** An HMAC secret (HS256 and friends), or a public key from jose's `importSPKI`/`importJWK`. One of `secret`, `key`, `jwksUrl`. */
  secret?: string | Uint8Array;
  key?: CryptoKey | Uint8Array;
  /** A JSON Web Key Set endpoint (e.g. an identity provider's `/.well-known/jwks.json`), fetched and cached by jose. */
  jwksUrl?: string;
  /** Required `iss` claim, when given. */
  issuer?: string | string[];
  /** Required `aud` claim, when given. */
  audience?: string | string[];
  /** Accepted algorithms. Default: whatever the key allows (jose never accepts unsigned tokens). */
  algorithms?: string[];
  /** Refuse tokens without an `exp` claim, which would be good forever. Default `true`. */
  requireExpiry?: boolean;
  /** The cookie that may carry the token. Default `ss-tok`, ServiceStack's JWT cookie. */
  cookie?: string;
  /** The query parameter that may carry the token, for a browser EventSource, which cannot set headers. Default `token`. */
  queryParameter?: string;
  /** Turns verified claims into an identity. Default: `sub` → userId, `preferred_username` → userName, `name` → displayName, `picture` → profileUrl. */
  toIdentity?: (claims: JWTPayload) => Identity;
}

/** Thrown for a token that is present but not valid: the stream request gets 401. */
class InvalidTokenError extends Error {
  readonly status = 401;
  readonly expose = true;
}

/**
 * An `authenticate` hook that reads a JSON Web Token from
 * `Authorization: Bearer`, the `ss-tok` cookie or the `token` query parameter
 * (in that order) and verifies it with jose. No token means anonymous (which
 * `limitToAuthenticatedUsers` can refuse); a bad or expired one is a 401. The
 * verified claims are left in `ctx.state.jwt` for other hooks, e.g.
 * `authorizeChannel`. A token in a query string shows up in access logs:
 * prefer the cookie where the page and the server share a site.
 */
export function jwtAuthenticate(options: JwtOptions): (ctx: Context) => Promise<Identity | undefined> {
  const key = verificationKey(options);
  const cookie = options.cookie ?? 'ss-tok';
  const queryParameter = options.queryParameter ?? 'token';
  const toIdentity = options.toIdentity ?? defaultIdentity;
  return async (ctx) => {
    const token = tokenOf(ctx, cookie, queryParameter);
    if (!token) return undefined;
    const claims = await verifyToken(token, key, options, (reason) => new InvalidTokenError(reason));
    const identity = toIdentity(claims);
    // An authenticated stream without a user id could never be resumed or addressed: the token is of no use here.
    if (!identity.userId) throw new InvalidTokenError('Invalid token: it names no user (sub)');
    ctx.state.jwt = claims;
    return Object.assign({}, identity, { isAuthenticated: true });
  };
}

/** The verification options these tokens share; throws `refusal(reason)` for a token that is not valid. */
export async function verifyToken(
  token: string,
  key: JWTVerifyGetKey | CryptoKey | Uint8Array,
  options: Pick<JwtOptions, 'issuer' | 'audience' | 'algorithms' | 'requireExpiry'>,
  refusal: (reason: string) => Error,
): Promise<JWTPayload> {
  try {
    const { payload } = await jwtVerify(token, key as JWTVerifyGetKey, {
      issuer: options.issuer,
      audience: options.audience,
      algorithms: options.algorithms,
      requiredClaims: options.requireExpiry === false ? [] : ['exp'],
    });
    return payload;
  } catch (error) {
    throw refusal(`Invalid token: ${(error as { code?: string }).code ?? 'rejected'}`);
  }
}

export function verificationKey(options: JwtOptions): JWTVerifyGetKey | CryptoKey | Uint8Array {
  const given = [options.secret, options.key, options.jwksUrl].filter((value) => value !== undefined);
  if (given.length !== 1) throw new Error('jwtAuthenticate needs exactly one of secret, key or jwksUrl');
  if (options.jwksUrl) return createRemoteJWKSet(new URL(options.jwksUrl));
  if (options.key) return options.key;
  return typeof options.secret === 'string' ? new TextEncoder().encode(options.secret) : options.secret!;
}

function tokenOf(ctx: Context, cookie: string, queryParameter: string): string | undefined {
  const header = ctx.get('Authorization');
  const bearer = /^Bearer\s+(\S+)$/i.exec(header)?.[1];
  if (bearer) return bearer;
  const fromCookie = ctx.cookies.get(cookie);
  if (fromCookie) return fromCookie;
  const fromQuery = ctx.query[queryParameter];
  return typeof fromQuery === 'string' && fromQuery ? fromQuery : undefined;
}

function defaultIdentity(claims: JWTPayload): Identity {
  const text = (value: unknown) => (typeof value === 'string' && value ? value : undefined);
  return {
    userId: text(claims.sub),
    userName: text(claims.preferred_username),
    displayName: text(claims.name),
    profileUrl: text(claims.picture),
  };
}
