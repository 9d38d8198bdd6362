import type { EventSink } from '../../src/subscription.js';

/** A sink that keeps what it was given, for unit tests of subscriptions. */
export class MemorySink implements EventSink {
  readonly writes: string[] = [];
  opened = false;
  ended = false;
  private closeListeners: Array<() => void> = [];

  open(): void {
    this.opened = true;
  }

  write(chunk: string): void {
    this.writes.push(chunk);
  }

  end(): void {
    this.ended = true;
    for (const listener of this.closeListeners.splice(0)) listener();
  }

  onClose(listener: () => void): void {
    this.closeListeners.push(listener);
  }

  /** The ids of the frames written. */
  get ids(): number[] {
    return this.writes.map((w) => Number(/^id: (\d+)/.exec(w)?.[1]));
  }
}
