/**
 * Buffered messages held as bytes: the backlog of a subscription whose
 * reader is behind.
 *
 * A nats.js message is five objects (the message, its protocol arguments,
 * views of its subject and of its data, which keep the whole socket read
 * they came in alive). A full buffer of them is young memory that every
 * V8 scavenge copies; under a steady overflow V8 answers by doubling its
 * young generation (measured: +64 MB of RSS for a 10,000-message buffer).
 * Held here, a message is its bytes (subject, reply, headers and payload,
 * back to back in one growable ring) and six numbers, so a backlog is a
 * couple of buffers and nothing for a scavenge to copy; it is made a
 * message again, with its own copy of its bytes, when the reader takes it.
 *
 * Records leave in the order they came in (taken or dropped), so the ring
 * needs no index: the oldest record is always the next one out.
 *
 * @internal
 */
import type { Msg, MsgArg, Publisher } from "@nats-io/nats-core/internal"
import { MsgImpl } from "@nats-io/nats-core/internal"

/** Fields of a record, in `meta`. */
const START = 0
const SUBJECT = 1
const REPLY = 2 // -1: no reply
const HDR = 3 // -1: no headers
const SIZE = 4 // headers and payload
const SID = 5
const FIELDS = 6

const initialBytes = 64 * 1024
const initialRecords = 1024

export class MessageRing {
  // allocated at the first record: a subscription that never falls behind never has them
  private bytes = new Uint8Array(0)
  private meta = new Int32Array(0)
  /** Records held, the index of the oldest, where the oldest's bytes start and where the next record's go. */
  private count = 0
  private first = 0
  private begin = 0
  private end = 0
  private publisher: Publisher | undefined

  /** Whether a message can be held as bytes: one nats.js received, as nats.js builds it. */
  static holds(msg: Msg): msg is Msg & MsgImpl {
    return msg instanceof MsgImpl && msg._rdata instanceof Uint8Array && (msg.sid | 0) === msg.sid
  }

  /** A field of a record (`record`: its first field's index). */
  private field(record: number, field: number): number {
    return this.meta[record + field] ?? 0
  }

  get size(): number {
    return this.count
  }

  /** Holds a message (one `holds` accepted) as the newest record. */
  push(msg: Msg & MsgImpl): void {
    const arg = msg._msg
    const reply = arg.reply
    const data = msg._rdata
    const length = arg.subject.length + (reply === undefined ? 0 : reply.length) + data.length
    if (this.meta.length === 0) {
      this.bytes = new Uint8Array(initialBytes)
      this.meta = new Int32Array(initialRecords * FIELDS)
    } else if (this.count === this.meta.length / FIELDS) this.growRecords()
    let at = this.placeOf(length)
    if (at < 0) {
      this.growBytes(length)
      at = this.end
    }
    const bytes = this.bytes
    bytes.set(arg.subject, at)
    let offset = at + arg.subject.length
    if (reply !== undefined) {
      bytes.set(reply, offset)
      offset += reply.length
    }
    bytes.set(data, offset)
    if (this.count === 0) this.begin = at
    this.end = offset + data.length
    const record = ((this.first + this.count) % (this.meta.length / FIELDS)) * FIELDS
    const meta = this.meta
    meta[record + START] = at
    meta[record + SUBJECT] = arg.subject.length
    meta[record + REPLY] = reply === undefined ? -1 : reply.length
    meta[record + HDR] = arg.hdr
    meta[record + SIZE] = data.length
    meta[record + SID] = arg.sid
    this.count++
    this.publisher = msg.publisher
  }

  /**
   * The `n` oldest records as messages again, pushed onto `into`. Their
   * bytes are copied to one buffer of their own (as nats.js' messages
   * share the socket read they came in).
   */
  shift(n: number, into: Array<Msg>): void {
    const records = this.meta.length / FIELDS
    let total = 0
    for (let i = 0; i < n; i++) total += this.lengthOf(((this.first + i) % records) * FIELDS)
    const own = new Uint8Array(total)
    // the records are back to back but where the ring wraps: a copy for each run of them
    let offset = 0
    let runStart = this.field(this.first * FIELDS, START)
    let runEnd = runStart
    for (let i = 0; i < n; i++) {
      const record = ((this.first + i) % records) * FIELDS
      const start = this.field(record, START)
      if (start !== runEnd) {
        own.set(this.bytes.subarray(runStart, runEnd), offset)
        offset += runEnd - runStart
        runStart = start
      }
      runEnd = start + this.lengthOf(record)
    }
    own.set(this.bytes.subarray(runStart, runEnd), offset)
    offset = 0
    for (let i = 0; i < n; i++) {
      const record = this.first * FIELDS
      const subject = this.field(record, SUBJECT)
      const reply = this.field(record, REPLY)
      const size = this.field(record, SIZE)
      const head = offset + subject + (reply < 0 ? 0 : reply)
      // the shape nats.js' parser gives its arguments, property for property
      const arg: MsgArg = {
        sid: this.field(record, SID),
        hdr: this.field(record, HDR),
        size,
        subject: own.subarray(offset, offset + subject)
      }
      if (reply >= 0) arg.reply = own.subarray(offset + subject, head)
      // nats.js' own `Msg` (its `headers` optional, not `| undefined`: the same at runtime)
      into.push(new MsgImpl(arg, own.subarray(head, head + size), this.publisher as Publisher) as unknown as Msg)
      offset = head + size
      this.remove()
    }
  }

  /** A record's bytes: subject, reply, headers and payload. */
  private lengthOf(record: number): number {
    const reply = this.field(record, REPLY)
    return this.field(record, SUBJECT) + (reply < 0 ? 0 : reply) + this.field(record, SIZE)
  }

  /** Drops the oldest record; its payload's size (headers excluded). */
  drop(): number {
    const record = this.first * FIELDS
    const hdr = this.field(record, HDR)
    const size = this.field(record, SIZE) - (hdr < 0 ? 0 : hdr)
    this.remove()
    return size
  }

  private remove(): void {
    this.count--
    if (this.count === 0) {
      this.first = this.begin = this.end = 0
      // a backlog's ring is not kept once it is gone
      if (this.bytes.length > 16 * initialBytes) this.bytes = new Uint8Array(initialBytes)
      return
    }
    this.first = (this.first + 1) % (this.meta.length / FIELDS)
    this.begin = this.field(this.first * FIELDS, START)
  }

  /** Where `length` bytes fit after the newest record (wrapping to the ring's start), or -1. */
  private placeOf(length: number): number {
    if (this.count === 0) return length <= this.bytes.length ? 0 : -1
    if (this.end > this.begin) {
      if (this.end + length <= this.bytes.length) return this.end
      return length < this.begin ? 0 : -1
    }
    return this.end + length < this.begin ? this.end : -1
  }

  /** A bigger ring, the records copied to its start in order; `end` is where the next one goes. */
  private growBytes(length: number): void {
    let capacity = this.bytes.length * 2
    while (capacity < this.bytes.length + length) capacity *= 2
    const next = new Uint8Array(capacity)
    const records = this.meta.length / FIELDS
    let offset = 0
    for (let i = 0; i < this.count; i++) {
      const record = ((this.first + i) % records) * FIELDS
      const start = this.field(record, START)
      const total = this.lengthOf(record)
      next.set(this.bytes.subarray(start, start + total), offset)
      this.meta[record + START] = offset
      offset += total
    }
    this.bytes = next
    this.begin = 0
    this.end = offset
  }

  /** Twice the records, the held ones first in order. */
  private growRecords(): void {
    const records = this.meta.length / FIELDS
    const next = new Int32Array(this.meta.length * 2)
    for (let i = 0; i < this.count; i++) {
      const from = ((this.first + i) % records) * FIELDS
      next.set(this.meta.subarray(from, from + FIELDS), i * FIELDS)
    }
    this.meta = next
    this.first = 0
  }
}
