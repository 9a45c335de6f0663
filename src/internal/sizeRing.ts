/**
 * The payload sizes of a queue's entries, oldest first, kept as running
 * totals: what the `n` oldest weigh is one subtraction, not a pass over
 * them. A subscription's buffer learns a chunk's bytes this way without
 * touching each message again (by then, memory the reader has yet to read).
 *
 * Entries leave in the order they came in (taken or dropped), as they do
 * from the queue the ring mirrors.
 *
 * @internal
 */

const initialEntries = 1024

export class SizeRing {
  // the running total of the bytes pushed, after each entry; its length a power of two
  private totals = new Float64Array(initialEntries)
  private first = 0
  private count = 0
  /** The bytes ever pushed, and ever shifted (exact below 2^53 bytes: 9 PB). */
  private pushed = 0
  private shifted = 0

  /** The entries held. */
  get size(): number {
    return this.count
  }

  /** The bytes of the entries held. */
  get bytes(): number {
    return this.pushed - this.shifted
  }

  /** One entry more, the newest. */
  push(size: number): void {
    if (this.count === this.totals.length) this.grow()
    this.pushed += size
    this.totals[(this.first + this.count) & (this.totals.length - 1)] = this.pushed
    this.count++
  }

  /** Removes the `n` oldest entries (all of them, if fewer are held); their bytes. */
  shift(n: number): number {
    const taken = Math.min(n, this.count)
    if (taken <= 0) return 0
    const mask = this.totals.length - 1
    const total = this.totals[(this.first + taken - 1) & mask] ?? this.shifted
    const bytes = total - this.shifted
    this.shifted = total
    this.count -= taken
    this.first = (this.first + taken) & mask
    // a backlog's ring is not kept once it is gone
    if (this.count === 0 && this.totals.length > 16 * initialEntries) {
      this.totals = new Float64Array(initialEntries)
      this.first = 0
    }
    return bytes
  }

  /** Twice the entries, the held ones first in order. */
  private grow(): void {
    const next = new Float64Array(this.totals.length * 2)
    const head = this.totals.subarray(this.first)
    next.set(head)
    next.set(this.totals.subarray(0, this.first), head.length)
    this.totals = next
    this.first = 0
  }
}
