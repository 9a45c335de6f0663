/**
 * The fields of a JetStream message's reply subject:
 * `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>.<pending>`,
 * or with a domain and an account hash after `ACK` and a random token at
 * the end. nats.js' `info` splits the subject, pads it to the long form and
 * `parseInt`s every field (about 0.4 µs a message); here one pass over the
 * characters finds the fields, and only the numbers are read (`parse`: all
 * of them, the names sliced when asked for; `storedMillis`: the one the
 * Processor's message age needs).
 *
 * @internal
 */

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

/** Where each token after `$JS.ACK.` ends (reused: the reads are synchronous). */
const ends = new Int32Array(11)

/**
 * Finds the tokens of `reply` (into `ends`); the index of the stream's
 * token (0 in the short form, 2 in the long one), or -1 when `reply` is not
 * a JetStream reply subject.
 */
const scan = (reply: string | undefined): number => {
  if (reply === undefined || !reply.startsWith("$JS.ACK.")) return -1
  let tokens = 0
  // from dot to dot (`indexOf`: twice as fast as a loop over the characters)
  for (let at = reply.indexOf(".", 8); at !== -1; at = reply.indexOf(".", at + 1)) {
    if (tokens === 10) return -1
    ends[tokens++] = at
  }
  ends[tokens++] = reply.length
  // 7 tokens after ACK, or 10 (a domain and an account hash first, a random token last)
  return tokens === 7 ? 0 : tokens === 10 ? 2 : -1
}

/** Where token `k` starts and ends (after a `scan`). */
const startOf = (k: number): number => k === 0 ? 8 : (ends[k - 1] ?? 0) + 1
const endOf = (k: number): number => ends[k] ?? 0

/**
 * The integer in token `k` of `s` (after a `scan`); -1 unless it is all
 * digits and not empty. Past 2^53 the digits add up to a double within a
 * few hundred nanoseconds of nats.js' `parseInt` (the stored time).
 */
const digits = (s: string, k: number): number => {
  const start = startOf(k)
  const end = endOf(k)
  if (end <= start) return -1
  let n = 0
  for (let i = start; i < end; i++) {
    const d = s.charCodeAt(i) - 48
    if (d < 0 || d > 9) return -1
    n = n * 10 + d
  }
  return n
}

/** When the message was stored, in milliseconds since the epoch (its `tm` token). */
export const storedMillis = (reply: string | undefined): number | undefined => {
  const f = scan(reply)
  if (f < 0 || reply === undefined) return undefined
  const nanos = digits(reply, f + 5)
  return nanos < 0 ? undefined : nanos / 1e6
}

/** The numbers read at once; the names (rarely read) sliced on demand. */
class Parsed implements Info {
  readonly delivered: number
  readonly streamSequence: number
  readonly consumerSequence: number
  readonly storedNanos: number
  readonly pending: number
  private readonly reply: string
  /** Where the stream's name starts and ends, then the consumer's. */
  private readonly names: readonly [number, number, number, number]
  constructor(reply: string, f: number) {
    this.reply = reply
    this.names = [startOf(f), endOf(f), startOf(f + 1), endOf(f + 1)]
    this.delivered = digits(reply, f + 2)
    this.streamSequence = digits(reply, f + 3)
    this.consumerSequence = digits(reply, f + 4)
    this.storedNanos = digits(reply, f + 5)
    this.pending = digits(reply, f + 6)
  }
  get valid(): boolean {
    return this.delivered >= 0 && this.streamSequence >= 0 && this.consumerSequence >= 0 &&
      this.storedNanos >= 0 && this.pending >= 0
  }
  get stream(): string {
    return this.reply.slice(this.names[0], this.names[1])
  }
  get consumer(): string {
    return this.reply.slice(this.names[2], this.names[3])
  }
}

/**
 * Every field, in one pass; `undefined` when `reply` is not a JetStream
 * reply subject of either form or a numeric field is not a number.
 */
export const parse = (reply: string | undefined): Info | undefined => {
  const f = scan(reply)
  if (f < 0 || reply === undefined) return undefined
  const parsed = new Parsed(reply, f)
  return parsed.valid ? parsed : undefined
}
