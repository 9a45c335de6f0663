/**
 * `publishAll` writes plain messages as protocol bytes in batches
 * (`internal/wireBatch`), and the rest one by one through nats.js: whatever
 * the mix, a subscriber on another connection receives every message, in
 * order, with its subject, payload, headers and reply subject; the
 * connection's counters agree; an oversize message fails as nats.js would,
 * after the messages before it.
 */
import { assert, describe, layer } from "@effect/vitest"
import type { Msg } from "@nats-io/nats-core"
import { Arbitrary, Effect, Fiber, Schema, Stream, Tracer } from "effect"
import { LocalNats, NatsClient, NatsServer } from "../../src/index.ts"

const Outgoing = Schema.Struct({
  subject: Schema.Literals(["pa.a", "pa.b.c", "pa.ü"]),
  payload: Schema.Union([
    Schema.String,
    Schema.Uint8Array,
    Schema.Undefined
  ]),
  header: Schema.optionalKey(Schema.Literals(["x", "y"])),
  reply: Schema.optionalKey(Schema.Literals(["pa.reply"]))
})
type Outgoing = typeof Outgoing.Type

const text = (payload: Outgoing["payload"]) =>
  payload === undefined ? "" : typeof payload === "string" ? payload : Buffer.from(payload).toString("latin1")
const bytes = (payload: Outgoing["payload"]) =>
  payload === undefined ? new Uint8Array(0) : typeof payload === "string" ? new TextEncoder().encode(payload) : payload

const toMessage = (o: Outgoing, i: number): NatsClient.OutgoingMessage => ({
  subject: o.subject,
  payload: o.payload,
  ...(o.header === undefined ? {} : { headers: { "X-Test": `${o.header}-${i}` } }),
  ...(o.reply === undefined ? {} : { reply: o.reply })
})

const other = Effect.gen(function*() {
  const server = yield* NatsServer.NatsServer
  return yield* NatsClient.make({ servers: server.urls, logEvents: false })
})

const receive = (sub: NatsClient.NatsClientShape, n: number) =>
  Effect.gen(function*() {
    const messages = yield* sub.subscribeScoped("pa.>", { bufferSize: 100_000 })
    yield* sub.flush
    return yield* messages.pipe(
      Stream.filter((m) => m.subject !== "pa.reply"),
      Stream.take(n),
      Stream.runCollect,
      Effect.map((c) => Array.from(c)),
      Effect.forkChild
    )
  })

const agree = (got: ReadonlyArray<Msg>, sent: ReadonlyArray<Outgoing>, traced: boolean) => {
  assert.strictEqual(got.length, sent.length)
  got.forEach((m, i) => {
    const o = sent[i] as Outgoing
    assert.strictEqual(m.subject, o.subject, `subject of ${i}`)
    assert.deepStrictEqual(Array.from(m.data), Array.from(bytes(o.payload)), `payload of ${i} (${text(o.payload)})`)
    assert.strictEqual(
      m.headers?.get("X-Test") ?? "",
      o.header === undefined ? "" : `${o.header}-${i}`,
      `header of ${i}`
    )
    assert.strictEqual(m.reply ?? "", o.reply ?? "", `reply of ${i}`)
    assert.strictEqual((m.headers?.get("traceparent") ?? "") !== "", traced, `traceparent of ${i}`)
  })
}

const tracer = Tracer.make({ span: (options) => new Tracer.NativeSpan(options) })

describe("publishAll", () => {
  layer(LocalNats.layer({ client: { logEvents: false } }), { excludeTestServices: true })("on a real server", (it) => {
    it.effect.prop(
      "every message arrives in order, as sent, whatever the mix of plain and other messages",
      [Arbitrary.array(Arbitrary.schema(Outgoing), { maxLength: 300 }), Schema.Boolean, Schema.Boolean],
      ([sent, asStream, traced]) =>
        Effect.scoped(Effect.gen(function*() {
          const nats = yield* NatsClient.NatsClient
          const sub = yield* other
          const received = yield* receive(sub, sent.length)
          const before = nats.connection.stats().outMsgs
          const messages = sent.map(toMessage)
          const publish = nats.publishAll(asStream ? Stream.fromIterable(messages).pipe(Stream.rechunk(7)) : messages, {
            flushEvery: 50
          })
          yield* traced ? publish.pipe(Effect.withSpan("caller"), Effect.withTracer(tracer)) : publish
          agree(yield* Fiber.join(received), sent, traced)
          assert.strictEqual(nats.connection.stats().outMsgs - before, sent.length)
        })),
      { arbitrary: { runs: 25 }, timeout: 60_000 }
    )

    it.effect("concurrent publishAll runs on one connection interleave by chunk, each in its own order", () =>
      Effect.scoped(Effect.gen(function*() {
        const nats = yield* NatsClient.NatsClient
        const sub = yield* other
        const received = yield* receive(sub, 3 * 500)
        const run = (subject: string) =>
          nats.publishAll(
            Stream.range(0, 499).pipe(
              Stream.map((i) => ({ subject, payload: String(i) })),
              Stream.rechunk(3),
              Stream.tap(() => Effect.yieldNow)
            )
          )
        yield* Effect.all([run("pa.a"), run("pa.b.c"), run("pa.ü")], { concurrency: "unbounded" })
        const got = yield* Fiber.join(received)
        for (const subject of ["pa.a", "pa.b.c", "pa.ü"]) {
          const mine = got.filter((m) => m.subject === subject).map((m) => Number(m.string()))
          assert.deepStrictEqual(mine, Array.from({ length: 500 }, (_, i) => i), subject)
        }
        // interleaved, not one run after the other
        const firstSubjects = new Set(got.slice(0, 60).map((m) => m.subject))
        assert.isTrue(firstSubjects.size > 1, "the runs interleave")
      })))

    it.effect("an oversize message fails with MaxPayloadExceeded; the messages before it arrive, none after", () =>
      Effect.scoped(Effect.gen(function*() {
        const nats = yield* NatsClient.NatsClient
        const sub = yield* other
        const received = yield* receive(sub, 3)
        const max = nats.connection.info?.max_payload ?? 1024 * 1024
        const error = yield* Effect.flip(nats.publishAll([
          { subject: "pa.a", payload: "1" },
          { subject: "pa.a", payload: "2" },
          { subject: "pa.a", payload: new Uint8Array(max + 1) },
          { subject: "pa.a", payload: "never" }
        ]))
        assert.strictEqual(error.reason._tag, "MaxPayloadExceeded")
        yield* nats.publish("pa.a", "after")
        const got = yield* Fiber.join(received)
        assert.deepStrictEqual(got.map((m) => m.string()), ["1", "2", "after"])
      })))
  })
})
