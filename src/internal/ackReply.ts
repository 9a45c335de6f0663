/**
 * The fields of a JetStream message's reply subject, read one at a time:
 * `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>.<pending>`,
 * or with a domain and an account hash after `ACK` and a random token at
 * the end. nats.js' `info` splits the subject and parses every field; the
 * hot paths (metrics, span attributes) read only the ones they need.
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
