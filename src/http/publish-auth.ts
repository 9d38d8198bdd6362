import { createHash, timingSafeEqual } from 'node:crypto';
import type { JWTPayload } from 'jose';
import type { Context } from 'koa';
import { verificationKey, verifyToken, type JwtOptions } from './jwt.js';

/** How publishers prove who they are; see `PublishOptions`. */
export interface PublishAuthOptions {
  /** Keys that may publish anything, sent as `X-Api-Key: {key}` or `Authorization: ApiKey {key}`. */
  apiKeys?: readonly string[];
  /**
   * Verifies tokens sent as `Authorization: Bearer {token}` (as `jwtAuthenticate` does, with
   * its key, issuer, audience, algorithms and expiry options). A token may publish where its
   * `publish` claim says (see `PublishGrant`).
   */
  jwt?: Pick<JwtOptions, 'secret' | 'key' | 'jwksUrl' | 'issuer' | 'audience' | 'algorithms' | 'requireExpiry'> & {
    /** The claim that lists what the token may publish to. Default `publish`. */
    claim?: string;
  };
}

/**
 * Where a publisher may publish: everything (an API key, or a token whose
 * claim holds `*`), or the channels its claim lists, each an exact name or a
 * prefix ending in `*` (`room.*`). A channel grant covers a channel publish,
 * and a targeted one whose `channel` filter it covers; publishing to every
 * subscription, or to users and sessions without a channel, needs `*`.
 */
export interface PublishGrant {
  /** Who it is, for keeping idempotency keys apart: the key's digest, or the token's issuer and subject. */
  scope: string;
  mayPublishTo(channel: string | undefined): boolean;
}

/** A request that cannot publish: the status (401 or 403) and the message to answer with. */
export class PublishRefusal extends Error {
  constructor(
    readonly status: 401 | 403,
    message: string,
  ) {
    super(message);
  }
}

/** Checks a publish request's credentials; throws `PublishRefusal`. */
export function publishAuthenticator(options: PublishAuthOptions): (ctx: Context) => Promise<PublishGrant> {
  const keys = (options.apiKeys ?? []).map(digest);
  if (keys.length === 0 && !options.jwt) throw new Error('the publish API needs apiKeys or jwt');
  if ((options.apiKeys ?? []).some((key) => key.length < 16)) throw new Error('a publish API key must be at least 16 characters');
  const key = options.jwt && verificationKey(options.jwt);
  const claim = options.jwt?.claim ?? 'publish';
  return async (ctx) => {
    const authorization = ctx.get('Authorization');
    const apiKey = ctx.get('X-Api-Key') || /^ApiKey\s+(.+)$/i.exec(authorization)?.[1]?.trim();
    if (apiKey) {
      const given = digest(apiKey);
      // Compared as digests, in constant time, against every key: the answer's timing says nothing about any of them.
      const matched = keys.reduce((found, known) => timingSafeEqual(known, given) || found, false);
      if (!matched) throw new PublishRefusal(401, 'Invalid API key');
      return { scope: `key:${given.toString('hex').slice(0, 32)}`, mayPublishTo: () => true };
    }
    const token = /^Bearer\s+(\S+)$/i.exec(authorization)?.[1];
    if (token && key) return grantOf(await verifyToken(token, key, options.jwt!, (reason) => new PublishRefusal(401, reason)), claim);
    throw new PublishRefusal(401, `Publishing needs ${[keys.length > 0 && 'an API key (X-Api-Key)', key && 'a token (Authorization: Bearer)'].filter(Boolean).join(' or ')}`);
  };
}

function grantOf(claims: JWTPayload, claim: string): PublishGrant {
  const listed = claims[claim];
  const patterns = typeof listed === 'string' ? [listed] : Array.isArray(listed) ? listed.filter((p): p is string => typeof p === 'string') : [];
  if (patterns.length === 0) throw new PublishRefusal(403, `The token has no '${claim}' claim: it may not publish`);
  const everything = patterns.includes('*');
  const covers = (channel: string) => patterns.some((p) => (p.endsWith('*') ? channel.startsWith(p.slice(0, -1)) : channel === p));
  // Idempotency keys are kept apart per principal: the issuer and subject, and for a token without a subject,
  // what it may publish to as well, so that a lesser token cannot claim (and so drop) another's keys.
  const principal = JSON.stringify([claims.iss ?? null, claims.sub ?? null, claims.sub === undefined ? patterns : null]);
  return {
    scope: `jwt:${digest(principal).toString('hex').slice(0, 32)}`,
    mayPublishTo: (channel) => everything || (channel !== undefined && covers(channel)),
  };
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
