/**
 * The ring a subscription's backlog is held in, against a model (an array
 * of the messages themselves): for any sequence of messages held, taken in
 * runs and dropped, what comes out is what went in, field for field, in
 * order, and stays so after the ring's bytes are reused or grown. The
 * subscription tests (test/services/NatsClient.test.ts) run it behind a
 * real subscription.
 */
import { assert, describe, it } from "@effect/vitest"
import type { Msg, MsgArg, Publisher } from "@nats-io/nats-core/internal"
import { MsgHdrsImpl, MsgImpl } from "@nats-io/nats-core/internal"
import { Arbitrary, Schema } from "effect"
import { MessageRing } from "../../src/internal/messageRing.ts"

const encoder = new TextEncoder()

/** What the fake connection was asked to publish (by `respond`). */
const published: Array<{ readonly subject: string; readonly data: string }> = []
const publisher: Publisher = {
  publish: (subject: string, data?: Uint8Array | string) => {
    published.push({ subject, data: typeof data === "string" ? data : new TextDecoder().decode(data) })
  }
} as Publisher

interface Spec {
  readonly subject: string
  readonly reply: string | undefined
  readonly header: string | undefined
  /** Payload bytes; large ones make the ring grow. */
  readonly size: number
}

/** A message as nats.js' parser builds it, with its bytes in a buffer shared with others (a socket read). */
const messageOf = (spec: Spec, sid: number): Msg & MsgImpl => {
  const block = spec.header === undefined ? new Uint8Array(0) : (() => {
    const h = new MsgHdrsImpl()
    h.set("X-Test", spec.header)
    return h.encode()
  })()
  const subject = encoder.encode(spec.subject)
  const reply = spec.reply === undefined ? undefined : encoder.encode(spec.reply)
  const read = new Uint8Array(8 + subject.length + (reply?.length ?? 0) + block.length + spec.size)
  read.set(subject, 8)
  if (reply !== undefined) read.set(reply, 8 + subject.length)
  const at = 8 + subject.length + (reply?.length ?? 0)
  read.set(block, at)
  for (let i = 0; i < spec.size; i++) read[at + block.length + i] = (sid + i) & 0xff
  const arg: MsgArg = {
    sid,
    hdr: spec.header === undefined ? -1 : block.length,
    size: block.length + spec.size,
    subject: read.subarray(8, 8 + subject.length)
  }
  if (reply !== undefined) arg.reply = read.subarray(8 + subject.length, at)
  // nats.js' `Msg` (its `headers` optional, not `| undefined`: the same at runtime)
  return new MsgImpl(arg, read.subarray(at), publisher) as unknown as Msg & MsgImpl
}

/** Everything a reader can see of a message. */
const view = (msg: Msg) => ({
  subject: msg.subject,
  reply: msg.reply,
  sid: msg.sid,
  header: msg.headers?.get("X-Test"),
  data: Array.from(msg.data),
  size: (msg as unknown as MsgImpl).size()
})

const Token = Schema.String.check(Schema.isPattern(/^[a-z0-9]{1,8}$/))
const Op = Schema.Union([
  Schema.Struct({
    op: Schema.Literal("push"),
    subject: Token,
    reply: Schema.UndefinedOr(Token),
    header: Schema.UndefinedOr(Token),
    // mostly small (the ring wraps), now and then large (it grows)
    size: Schema.Union([
      Schema.Literals([0, 1, 128]),
      Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 6_000 })),
      Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 70_000 }))
    ])
  }),
  Schema.Struct({ op: Schema.Literal("shift"), n: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 6 })) }),
  Schema.Struct({ op: Schema.Literal("drop") })
])
const ops = Arbitrary.array(Arbitrary.schema(Op), { maxLength: 400 })

describe("MessageRing against a model", () => {
  it.prop("what is taken is what was held, in order, and stays so; a drop gives the payload's size", [ops], ([ops]) => {
    const ring = new MessageRing()
    const model: Array<Msg & MsgImpl> = []
    const taken: Array<{ readonly msg: Msg; readonly expected: ReturnType<typeof view> }> = []
    let sid = 1
    for (const step of ops) {
      if (step.op === "push") {
        const msg = messageOf(step, sid++)
        ring.push(msg)
        model.push(msg)
      } else if (step.op === "shift") {
        const n = Math.min(step.n, model.length)
        if (n === 0) continue
        const into: Array<Msg> = []
        ring.shift(n, into)
        const expected = model.splice(0, n)
        assert.strictEqual(into.length, n)
        into.forEach((msg, i) => taken.push({ msg, expected: view(expected[i] as Msg) }))
      } else if (model.length > 0) {
        const oldest = model.shift() as Msg
        assert.strictEqual(ring.drop(), oldest.data.length)
      }
      assert.strictEqual(ring.size, model.length)
    }
    // every message taken is intact after the ring's bytes were written over, grown and shrunk
    for (const { expected, msg } of taken) assert.deepStrictEqual(view(msg), expected)
    const rest: Array<Msg> = []
    if (model.length > 0) ring.shift(model.length, rest)
    assert.deepStrictEqual(rest.map(view), model.map(view))
  }, { arbitrary: { runs: 300 } })

  it("at the ring's end a record wraps to its start only if it ends before the oldest record", () => {
    const ring = new MessageRing()
    const spec = (size: number): Spec => ({ subject: "a", reply: undefined, header: undefined, size })
    // 64 KiB of ring: A at 0 (1,000 bytes), B after it up to 65,000; A dropped, the oldest starts at 1,000
    const [a, b, c, d] = [
      messageOf(spec(999), 1),
      messageOf(spec(63_999), 2),
      messageOf(spec(1_003), 3),
      messageOf(spec(998), 4)
    ]
    for (const msg of [a, b]) ring.push(msg)
    ring.drop()
    ring.push(c) // 1,004 bytes: too long for before B
    ring.push(d) // 999 bytes: fits before B, once the ring grew
    const into: Array<Msg> = []
    ring.shift(3, into)
    assert.deepStrictEqual(into.map(view), [b, c, d].map(view))
  })

  it("a taken message answers through the connection it came from; one nats.js did not build is not held", () => {
    const ring = new MessageRing()
    ring.push(messageOf({ subject: "svc.a", reply: "_INBOX.r", header: undefined, size: 3 }, 7))
    const into: Array<Msg> = []
    ring.shift(1, into)
    published.length = 0
    assert.isTrue(into[0]?.respond("pong"))
    assert.deepStrictEqual(published, [{ subject: "_INBOX.r", data: "pong" }])
    assert.isFalse(MessageRing.holds({ ...into[0] } as Msg))
    assert.isTrue(MessageRing.holds(into[0] as Msg))
  })
})
