import { randomBytes } from 'node:crypto';
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

/**
 * A random id of 15 bytes (120 bits) in base64, drawn again until it has no
 * `+` or `/`: 20 characters of `[A-Za-z0-9]`, safe in URLs and cookies.
 */
export function createRandomId(): string {
  for (;;) {
    const id = randomBytes(15).toString('base64');
    if (!/[+/]/.test(id)) return id;
  }
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
