import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { KV, KvEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { uniqueId, type JetStreamPublisher } from './publisher.js';
import { attemptHeader, conflict, storedAttempt, throughElections, type CallBudget, type Conflict } from './kv.js';

/** A key as last written: its value when it holds one, and the revision that a conditional write names. */
export interface KeyState {
  /** The entry, when the key holds a value (not when it was deleted or never written). */
  entry: KvEntry | undefined;
  /** The sequence of the key's last message, a delete marker included; 0 for a key never written. */
  revision: number;
}

/**
 * A JetStream key/value bucket whose conditional writes hold on a cluster.
 *
 * A write names the revision it read (`Nats-Expected-Last-Subject-Sequence`).
 * On a replicated stream, nats-server before 2.9.21 checks that against the
 * stored messages only, not against writes still being agreed on, so two
 * writers that read the same revision could both succeed (nats-server issue
 * 4320; the Debian package is 2.9.10). Each conditional write also carries a
 * message id made of the key and that revision: writers that read the same
 * revision send the same id, and JetStream's duplicate check, which does
 * count writes in flight, keeps only the first. An id never repeats: every
 * revision is a stream sequence, and 0 only comes back for a key whose
 * history has gone, which takes longer than the duplicate window (2 minutes,
 * or the bucket's age limit when shorter).
 *
 * Every call is tried again for a moment while the bucket's stream has no
 * leader (`throughElections`), so that losing the node that led it is a
 * pause, not an error.
 */
export class Bucket {
  private jsm: Promise<JetStreamManager> | undefined;

  constructor(
    readonly kv: KV,
    private readonly nc: NatsConnection,
    private readonly name: string,
    private readonly budget: CallBudget,
    /** Writes go out through it: a key is a subject of the bucket's stream, and a write is a publish to it. */
    private readonly publisher: JetStreamPublisher,
  ) {}

  async read(key: string): Promise<KeyState> {
    const entry = await throughElections(this.budget, () => this.kv.get(key));
    if (!entry) return { entry: undefined, revision: 0 };
    return { entry: entry.operation === 'PUT' ? entry : undefined, revision: entry.revision };
  }

  /** The key's value, when it holds one. */
  async get(key: string): Promise<KvEntry | undefined> {
    return (await this.read(key)).entry;
  }

  /** Writes whatever was there before. */
  async put(key: string, value: string): Promise<void> {
    // A second per attempt: an attempt sent to a leader that has just gone is retried, not waited out.
    await throughElections(this.budget, (timeoutMs) => this.publisher.publish(this.subjectOf(key), value, { timeoutMs }));
  }

  /** Deletes whatever was there before. */
  async delete(key: string): Promise<void> {
    await throughElections(this.budget, () => this.kv.delete(key));
  }

  /** Writes `value` if the key is still at `revision`; `conflict` when another writer got there first. */
  async writeIf(key: string, value: string, revision: number): Promise<true | Conflict> {
    return (await this.conditional(key, value, revision, false)) === conflict ? conflict : true;
  }

  /** As `writeIf`, answering the key's new revision, so that the writer may write again without reading it. */
  writeIfAt(key: string, value: string, revision: number): Promise<number | Conflict> {
    return this.conditional(key, value, revision, false);
  }

  /** Deletes the key if it is still at `revision`; `conflict` when another writer got there first. */
  async deleteIf(key: string, revision: number): Promise<true | Conflict> {
    return (await this.conditional(key, '', revision, true)) === conflict ? conflict : true;
  }

  /** The key's new revision, or `conflict`. */
  private async conditional(key: string, value: string, revision: number, remove: boolean): Promise<number | Conflict> {
    // The attempt tells this write from another writer's with the same message id, should a repeat come back a duplicate.
    const attempt = uniqueId();
    const h: Record<string, string> = { [attemptHeader]: attempt, 'Nats-Expected-Last-Subject-Sequence': String(revision) };
    if (remove) h['KV-Operation'] = 'DEL';
    let tries = 0;
    try {
      const ack = await throughElections(this.budget, (timeout) => {
        tries++;
        return this.publisher.publish(this.subjectOf(key), value, { headers: h, msgID: `${key}@${revision}`, timeoutMs: timeout });
      });
      if (!ack.duplicate) return ack.seq;
      // A first try that is a duplicate lost to another writer. A repeat may be a duplicate of this
      // write's own earlier try, stored although its answer never came: the stored message says which.
      return tries > 1 && (await this.storedAttempt(ack.seq)) === attempt ? ack.seq : conflict;
    } catch (error) {
      if (/wrong last sequence|key exists/i.test((error as Error).message)) return conflict;
      throw error;
    }
  }

  /** The subject a key is written on (the bucket's own, as nats.js names it). */
  private subjectOf(key: string): string {
    return `$KV.${this.name}.${key}`;
  }

  private async storedAttempt(sequence: number): Promise<string | undefined> {
    this.jsm ??= jetstreamManager(this.nc);
    return storedAttempt(await this.jsm, `KV_${this.name}`, sequence, this.budget);
  }
}

