import { randomFillSync } from 'node:crypto';
import { hasControlCharacter } from './protocol.js';

/** Who opened a stream, as the `authenticate` hook tells it. Every field is optional. */
export interface Identity {
  /** A user id makes the stream authenticated unless `isAuthenticated` says otherwise. */
  userId?: string;
  userName?: string;
  displayName?: string;
  /** Default: the `ss-id` cookie, created when missing. */
  sessionId?: string;
  isAuthenticated?: boolean;
  profileUrl?: string;
}

/** A neutral silhouette, used when a user has no picture. */
export const defaultProfileUrl =
  "data:image/svg+xml,<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 32 32'><rect width='32' height='32' fill='%23cfd8dc'/>" +
  "<circle cx='16' cy='12' r='6' fill='%2378909c'/><path d='M4 30c1-7 6-10 12-10s11 3 12 10z' fill='%2378909c'/></svg>";

const idAlphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const idLength = 20;
// Random bytes are drawn 4 KiB at a time: one system call per ~200 ids instead of one per id, which a connect paid for three times.
const pool = Buffer.alloc(4096);
let poolOffset = pool.length;

/** One random byte from the pool, refilled when used up. */
function randomByte(): number {
  if (poolOffset === pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  return pool[poolOffset++]!;
}

/**
 * A random id of 20 characters of `[A-Za-z0-9]` (119 bits), safe in URLs
 * and cookies. Bytes of 248 and above are drawn again, so that every
 * character is equally likely.
 */
export function createRandomId(): string {
  const id = Buffer.allocUnsafe(idLength);
  for (let i = 0; i < idLength; ) {
    const byte = randomByte();
    if (byte < 248) id[i++] = idAlphabet.charCodeAt(byte % 62);
  }
  // One flat string (a string built by `+=` would be a chain of 20 pieces, kept as long as the subscription).
  return id.toString('latin1');
}

/**
 * The name shown for a user: the user name when it looks like a name (no
 * `@`, not a number), as ServiceStack chooses, otherwise the display name.
 */
export function safeDisplayName(identity: Identity): string | undefined {
  const { userName, displayName } = identity;
  if (userName && !userName.includes('@') && !/^\d+$/.test(userName)) return userName;
  return displayName ?? undefined;
}

/** The longest user id, user name, display name or session id accepted from `authenticate`. */
export const MAX_IDENTITY_FIELD_LENGTH = 256;

/**
 * Why an identity cannot be used, or `undefined`: its names travel in every
 * presence message and listing, so they are bounded and free of control
 * characters, whatever the token or hook that produced them.
 */
export function identityProblem(identity: Identity): string | undefined {
  for (const key of ['userId', 'userName', 'displayName', 'sessionId', 'profileUrl'] as const) {
    const value = identity[key];
    if (value === undefined) continue;
    if (typeof value !== 'string') return `${key} must be a string`;
    const limit = key === 'profileUrl' ? 4 * MAX_IDENTITY_FIELD_LENGTH : MAX_IDENTITY_FIELD_LENGTH;
    if (value.length > limit) return `${key} is longer than ${limit} characters`;
    if (hasControlCharacter(value)) return `${key} contains a control character`;
  }
  return undefined;
}

/** ServiceStack's rule: a stream with a user id is authenticated unless the identity says otherwise. */
export function isAuthenticated(identity: Identity): boolean {
  return identity.isAuthenticated ?? identity.userId !== undefined;
}
