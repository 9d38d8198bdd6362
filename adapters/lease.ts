/**
 * A presence record with the moment its lease runs out, on this process's
 * clock: how the backends without a clock of their own (the in-process hub,
 * NATS key/value) keep leases. Redis keeps them in Lua, on Redis's clock.
 */
export interface Lease {
  record: string;
  expiresAt: number;
}

/** A lease on `record` of `ttlMs` from now. */
export function leaseOf(record: string, ttlMs: number, now = Date.now()): Lease {
  return { record, expiresAt: now + ttlMs };
}

/** True while the lease runs. */
export function isLive(lease: Lease, now = Date.now()): boolean {
  return lease.expiresAt > now;
}
