/**
 * Batched core publishes: many messages written as protocol bytes into one
 * buffer and handed to nats.js' outbound queue at once, instead of one
 * `nc.publish` each. nats.js spends most of a publish building the
 * `PUB <subject> <size>\r\n` line as a string and encoding it with a
 * `TextEncoder` (45% of its publish loop, by profile), then queueing three
 * buffers it later copies into one; here the subject's bytes are encoded
 * once per subject, the sizes are written as digits, and the payloads are
 * copied once, into the buffer that is written to the socket.
 *
 * Everything else stays nats.js': the batch goes through the connection's
 * own `sendCommand` (its outbound queue), so it is ordered with every other
 * publish, buffered while the connection reconnects, and flushed as
 * nats.js flushes; its publish counters are kept. Only plain messages are
 * batched: no reply subject, and either no headers or the one header block
 * every message of the batch shares (a traced `publishAll`'s); the caller
 * checks subjects and sizes first (`validation`), as `nc.publish` would.
 *
 * It reaches nats.js' protocol handler (`nc.protocol`), which nats-core
 * does not document: `of` returns `undefined` when it is not there, and the
 * publisher then publishes one message at a time.
 *
 * @internal
 */
import type { NatsConnection } from "@nats-io/nats-core"

interface Protocol {
  sendCommand(cmd: Uint8Array): void
  outMsgs: number
  outBytes: number
  readonly noMorePublishing?: boolean
}

const encoder = new TextEncoder()
const CR = 13
const LF = 10
const SPACE = 32

/** At most this many subjects' encoded prefixes are kept (a batch over unbounded subjects re-encodes). */
const MAX_SUBJECTS = 1024

export class WireBatch {
  private buffer = new Uint8Array(4 * 1024)
  private length = 0
  private messages = 0
  private bytes = 0
  /** Where the message added last begins (for `undo`). */
  private lastStart = 0
  /** `PUB <subject> ` (or `HPUB <subject> `), encoded. */
  private readonly prefixes = new Map<string, Uint8Array>()
  private readonly protocol: Protocol
  /** The shared header block and its size as digits (`HPUB`), or none (`PUB`). */
  private readonly headerBlock: Uint8Array | undefined

  private constructor(protocol: Protocol, headerBlock: Uint8Array | undefined) {
    this.protocol = protocol
    this.headerBlock = headerBlock
  }

  /** A batch on `nc`, when nats.js' protocol handler is reachable; every message with `headerBlock`, if given. */
  static of(nc: NatsConnection, headerBlock?: Uint8Array): WireBatch | undefined {
    const protocol = (nc as unknown as { readonly protocol?: Partial<Protocol> }).protocol
    if (protocol === undefined || typeof protocol.sendCommand !== "function" || typeof protocol.outMsgs !== "number") {
      return undefined
    }
    // a server without headers: nats.js refuses such messages, and says why
    if (headerBlock !== undefined && nc.info !== undefined && nc.info.headers !== true) return undefined
    return new WireBatch(protocol as Protocol, headerBlock)
  }

  /** Whether publishing is refused now (a closed or draining connection): publish those through nats.js, which says why. */
  refused(nc: NatsConnection): boolean {
    return nc.isClosed() || this.protocol.noMorePublishing === true
  }

  private prefix(subject: string): Uint8Array {
    let prefix = this.prefixes.get(subject)
    if (prefix === undefined) {
      if (this.prefixes.size >= MAX_SUBJECTS) this.prefixes.clear()
      prefix = encoder.encode(`${this.headerBlock === undefined ? "PUB" : "HPUB"} ${subject} `)
      this.prefixes.set(subject, prefix)
    }
    return prefix
  }

  private room(n: number) {
    if (this.length + n <= this.buffer.length) return
    const grown = new Uint8Array(Math.max(this.buffer.length * 2, this.length + n))
    grown.set(this.buffer.subarray(0, this.length))
    this.buffer = grown
  }

  /** Writes `n` (a non-negative integer) as decimal digits. */
  private digits(n: number) {
    let count = 1
    for (let t = n; t >= 10; t = Math.floor(t / 10)) count++
    for (let i = count - 1, rest = n; i >= 0; i--, rest = Math.floor(rest / 10)) {
      this.buffer[this.length + i] = 48 + (rest % 10)
    }
    this.length += count
  }

  /**
   * Adds a message; returns its payload size in bytes (headers included),
   * for the caller's `max_payload` check: `undo` takes it back out.
   */
  add(subject: string, payload: string | Uint8Array | undefined): number {
    const start = this.length
    const prefix = this.prefix(subject)
    const headers = this.headerBlock
    const hlen = headers === undefined ? 0 : headers.length
    const data = typeof payload === "string" ? encoder.encode(payload) : payload
    const dataLength = data === undefined ? 0 : data.length
    // the line, with room for two sizes of up to 12 digits
    this.room(prefix.length + 2 * 12 + 2 + hlen + dataLength + 2)
    this.buffer.set(prefix, this.length)
    this.length += prefix.length
    if (headers !== undefined) {
      this.digits(hlen)
      this.buffer[this.length++] = SPACE
    }
    this.digits(hlen + dataLength)
    this.buffer[this.length++] = CR
    this.buffer[this.length++] = LF
    if (headers !== undefined) {
      this.buffer.set(headers, this.length)
      this.length += hlen
    }
    if (data !== undefined && dataLength > 0) {
      this.buffer.set(data, this.length)
      this.length += dataLength
    }
    this.buffer[this.length++] = CR
    this.buffer[this.length++] = LF
    this.messages++
    this.bytes += hlen + dataLength
    this.lastStart = start
    return hlen + dataLength
  }

  /** Takes the message just added back out (it was refused). */
  undo(size: number): void {
    this.length = this.lastStart
    this.messages--
    this.bytes -= size
  }

  /** Hands what was added to nats.js' outbound queue (in order with every other publish). */
  send(): void {
    if (this.length === 0) return
    // what is sent becomes nats.js' (it keeps it until written): a little is copied out, a lot is
    // handed over with the buffer, and a new buffer takes what comes next
    let out: Uint8Array
    if (this.length < 16 * 1024) {
      out = this.buffer.slice(0, this.length)
    } else {
      out = this.buffer.subarray(0, this.length)
      // the next batch is likely the size of this one
      this.buffer = new Uint8Array(this.length)
    }
    this.length = 0
    this.protocol.outMsgs += this.messages
    this.protocol.outBytes += this.bytes
    this.messages = 0
    this.bytes = 0
    this.protocol.sendCommand(out)
  }
}
