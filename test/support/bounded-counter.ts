/**
 * Counts per key for the fakes' call statistics, bounded: beyond `maxKeys` distinct keys (a benchmark asking
 * for random ids) only the total keeps growing, so a long load cannot fill memory.
 */
export class BoundedCounter {
  private readonly counts = new Map<string, number>();
  private all = 0;

  constructor(private readonly maxKeys = 10_000) {}

  add(key: string): void {
    this.all += 1;
    const count = this.counts.get(key);
    if (count !== undefined) this.counts.set(key, count + 1);
    else if (this.counts.size < this.maxKeys) this.counts.set(key, 1);
  }

  get(key?: string): number {
    return key === undefined ? this.all : (this.counts.get(key) ?? 0);
  }
}
