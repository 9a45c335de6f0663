/**
 * The fields of a JetStream message's reply subject:
 * `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>.<pending>`,
 * or with a domain and an account hash after `ACK` and a random token at
 * the end. nats.js' `info` splits the subject, pads it to the long form and
 * `parseInt`s every field (about 0.4 µs a message); `parse` reads them all
 * in one pass over the characters, `text` / `number` one field (the
 * Processor's message age).
 *
 * @internal
 */

/** The position of each field in the short form. */
export const Field = {
  stream: 2,
  consumer: 3,
  delivered: 4,
  streamSequence: 5,
  consumerSequence: 6,
  storedNanos: 7,
  pending: 8
} as const

/** The text of a field; `undefined` when `reply` is not a JetStream reply subject. */
export const text = (reply: string | undefined, field: number): string | undefined => {
  if (reply === undefined || !reply.startsWith("$JS.ACK.")) return undefined
  let dots = 0
  for (let i = 0; i < reply.length; i++) if (reply.charCodeAt(i) === 46) dots++
  // 9 tokens, or 12 (two more after ACK)
  const index = dots === 8 ? field : dots === 11 ? field + 2 : -1
  if (index < 0) return undefined
  let start = 0
  for (let seen = 0; seen < index; seen++) start = reply.indexOf(".", start) + 1
  const end = reply.indexOf(".", start)
  return reply.slice(start, end < 0 ? reply.length : end)
}

/** A numeric field; `undefined` when absent or not a number. */
export const number = (reply: string | undefined, field: number): number | undefined => {
  const value = text(reply, field)
  if (value === undefined || value === "") return undefined
  const n = Number(value)
  return Number.isFinite(n) ? n : undefined
}

/** When the message was stored, in milliseconds since the epoch (its `tm` token). */
export const storedMillis = (reply: string | undefined): number | undefined => {
  const nanos = number(reply, Field.storedNanos)
  return nanos === undefined ? undefined : nanos / 1e6
}

/** Every field of a JetStream reply subject (see `parse`). */
export interface Info {
  readonly stream: string
  readonly consumer: string
  /** Deliveries of the message so far, this one included. */
  readonly delivered: number
  readonly streamSequence: number
  readonly consumerSequence: number
  /** When it was stored, in nanoseconds since the epoch (a double: exact to the microsecond or so). */
  readonly storedNanos: number
  /** Messages left for the consumer after this one. */
  readonly pending: number
}

/** Where each token after `$JS.ACK.` ends (reused: `parse` is synchronous). */
const ends = new Int32Array(11)

/** The integer in `s` from `start` to `end`; -1 unless it is all digits (and not empty). */
const digits = (s: string, start: number, end: number): number => {
  if (end <= start) return -1
  let n = 0
  for (let i = start; i < end; i++) {
    const d = s.charCodeAt(i) - 48
    if (d < 0 || d > 9) return -1
    n = n * 10 + d
  }
  return n
}

/** The numbers read at once; the names (rarely read) sliced on demand. */
class Parsed implements Info {
  readonly delivered: number
  readonly streamSequence: number
  readonly consumerSequence: number
  readonly storedNanos: number
  readonly pending: number
  private readonly reply: string
  private readonly names: number
  constructor(
    reply: string,
    names: number,
    delivered: number,
    streamSequence: number,
    consumerSequence: number,
    storedNanos: number,
    pending: number
  ) {
    this.reply = reply
    this.names = names
    this.delivered = delivered
    this.streamSequence = streamSequence
    this.consumerSequence = consumerSequence
    this.storedNanos = storedNanos
    this.pending = pending
  }
  /** The token at `index` (0: the stream, 1: the consumer), from the long form's offset `names`. */
  private token(index: number): string {
    const dots = [8]
    for (let i = 8; i < this.reply.length; i++) if (this.reply.charCodeAt(i) === 46) dots.push(i + 1)
    const at = this.names + index
    const from = dots[at] ?? 0
    const to = (dots[at + 1] ?? this.reply.length + 1) - 1
    return this.reply.slice(from, to)
  }
  get stream(): string {
    return this.token(0)
  }
  get consumer(): string {
    return this.token(1)
  }
}

/**
 * Every field, in one pass (the stream and consumer names sliced when
 * read); `undefined` when `reply` is not a JetStream reply subject of either
 * form or a numeric field is not a number.
 */
export const parse = (reply: string | undefined): Info | undefined => {
  if (reply === undefined || !reply.startsWith("$JS.ACK.")) return undefined
  let tokens = 0
  for (let i = 8; i < reply.length; i++) {
    if (reply.charCodeAt(i) !== 46) continue
    if (tokens === 10) return undefined
    ends[tokens++] = i
  }
  ends[tokens++] = reply.length
  // 7 tokens after ACK, or 10 (a domain and an account hash first, a random token last)
  const f = tokens === 7 ? 0 : tokens === 10 ? 2 : -1
  if (f < 0) return undefined
  // token k spans ends[k - 1] + 1 .. ends[k]
  const delivered = digits(reply, (ends[f + 1] ?? 0) + 1, ends[f + 2] ?? 0)
  const streamSequence = digits(reply, (ends[f + 2] ?? 0) + 1, ends[f + 3] ?? 0)
  const consumerSequence = digits(reply, (ends[f + 3] ?? 0) + 1, ends[f + 4] ?? 0)
  const storedFrom = (ends[f + 4] ?? 0) + 1
  const storedTo = ends[f + 5] ?? 0
  const pending = digits(reply, storedTo + 1, ends[f + 6] ?? 0)
  if (delivered < 0 || streamSequence < 0 || consumerSequence < 0 || pending < 0 || storedTo <= storedFrom) {
    return undefined
  }
  // past 2^53 the digits add up to a double within a few hundred nanoseconds of nats.js' (its `parseInt`)
  const storedNanos = digits(reply, storedFrom, storedTo)
  if (storedNanos < 0) return undefined
  return new Parsed(reply, f, delivered, streamSequence, consumerSequence, storedNanos, pending)
}
