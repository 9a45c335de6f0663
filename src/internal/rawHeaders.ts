/**
 * One header of a received message, read from its raw header block without
 * nats.js decoding the block. nats.js' `msg.headers` decodes all of it at
 * the first read (the block as text, split into lines, every header
 * validated and added, each `get` a scan of every key): several times what
 * a traced consumer's `traceparent` and `Nats-Msg-Id` are worth, on every
 * message. Here the block is searched for the header's line, as nats.js
 * would find it (the name matched exactly, the value trimmed, the first of
 * several); the block is decoded only when the user reads `headers`.
 *
 * nats.js' received message keeps the block in fields its types do not
 * show (`_msg.hdr`, its length, and `_rdata`); any other message, or one
 * whose headers were decoded already, is read through `headers`. A block
 * nats.js would refuse to decode (a header name with a character it does
 * not allow) is still searched: `headers` fails on it later, as before.
 *
 * @internal
 */
import type { MsgHdrs } from "@nats-io/nats-core"

/** Something that carries headers: a nats.js message, a JetStream message, an envelope. */
export interface Carrier {
  readonly headers?: MsgHdrs | undefined
}

/** nats.js' received message, as far as its raw header block goes. */
interface RawMsg {
  readonly _msg: { readonly hdr: number }
  readonly _rdata: Uint8Array
  readonly _headers: MsgHdrs | undefined
}

const isRaw = (u: unknown): u is RawMsg => {
  if (typeof u !== "object" || u === null) return false
  const m = u as Partial<RawMsg>
  return typeof m._msg?.hdr === "number" && m._rdata instanceof Uint8Array
}

/**
 * The nats.js message under a carrier: itself, or the one a JetStream
 * message or an envelope wraps (their `headers` are a getter reading the
 * wrapped message's; an object with `headers` of its own is read as it is).
 */
const rawOf = (carrier: Carrier): RawMsg | undefined => {
  let u: unknown = carrier
  for (let depth = 0; depth < 3; depth++) {
    if (isRaw(u)) return u
    if (typeof u !== "object" || u === null || Object.hasOwn(u, "headers") || !("msg" in u)) return undefined
    u = (u as { readonly msg: unknown }).msg
  }
  return undefined
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()
/** `\r\n<name>:` for each name asked for (a handful: the ones the library reads). */
const patterns = new Map<string, Uint8Array>()

const patternOf = (name: string): Uint8Array => {
  let pattern = patterns.get(name)
  if (pattern === undefined) {
    pattern = encoder.encode(`\r\n${name}:`)
    if (patterns.size < 64) patterns.set(name, pattern)
  }
  return pattern
}

/**
 * `data[start, end)` as text: an ASCII value of a Node `Buffer` (what nats.js
 * receives into) as latin-1, the same text for a fraction of a
 * `TextDecoder`'s fixed cost; anything else as UTF-8.
 */
const decode = (data: Uint8Array, start: number, end: number, ascii: boolean): string =>
  ascii && Buffer.isBuffer(data) ? data.toString("latin1", start, end) : decoder.decode(data.subarray(start, end))

/**
 * The value of the first line of the header block (`data` up to `length`)
 * that starts `pattern` (up to the line's `\r\n`, trimmed as nats.js trims
 * it); `undefined` when none does. The block is not copied or viewed: only
 * the value is decoded.
 */
const find = (data: Uint8Array, length: number, pattern: Uint8Array): string | undefined => {
  const n = pattern.length
  const last = length - n
  // every pattern starts with `\r` (its line's start): only those are compared further
  for (let i = 0; i <= last; i++) {
    if (data[i] !== 13) continue
    let j = 1
    while (j < n && data[i + j] === pattern[j]) j++
    if (j < n) continue
    const start = i + n
    let end = start
    let bits = 0
    while (end < length && !(data[end] === 13 && end + 1 < length && data[end + 1] === 10)) bits |= data[end++] ?? 0
    return decode(data, start, end, bits < 0x80).trim()
  }
  return undefined
}

/**
 * The first value of header `name` (matched exactly, as nats.js' `get`);
 * `undefined` when the message has no such header.
 */
export const get = (carrier: Carrier, name: string): string | undefined => {
  const raw = rawOf(carrier)
  if (raw === undefined || raw._headers !== undefined) {
    return carrier.headers?.has(name)
      ? carrier.headers.get(name)
      : undefined
  }
  const length = raw._msg.hdr
  if (length < 0) return undefined
  return find(raw._rdata, Math.min(length, raw._rdata.length), patternOf(name))
}
