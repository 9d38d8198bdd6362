/**
 * The last `capacity` numbers added, for telling whether one was seen
 * lately; the oldest is forgotten as each new one comes.
 */
export class RecentSet {
  private readonly members = new Set<number>();
  private readonly order: number[] = [];
  private next = 0;

  constructor(private readonly capacity: number) {}

  /** Adds `value`; false when it was there already. */
  add(value: number): boolean {
    if (this.members.has(value)) return false;
    if (this.order.length < this.capacity) this.order.push(value);
    else {
      this.members.delete(this.order[this.next]!);
      this.order[this.next] = value;
      this.next = (this.next + 1) % this.capacity;
    }
    this.members.add(value);
    return true;
  }
}
