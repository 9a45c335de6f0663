import { assert, describe, layer } from "@effect/vitest"
import { Effect, Fiber, Logger, Ref, Schema, Stream } from "effect"
import { Codec, LocalNats, NatsClient, Subject, TypedSubject } from "../../src/index.ts"

const Order = Schema.Struct({ id: Schema.String, cents: Schema.Int })
const OrderCreated = TypedSubject.make("typed.orders.created", Order)
const OrderEvents = TypedSubject.make(Subject.template("typed.orders.{orderId}.{event}"), Order)

const publishRaw = (subject: string, payload: string) =>
  NatsClient.NatsClient.use((client) => client.publish(subject, payload))

describe("TypedSubject", () => {
  layer(LocalNats.layer(), { excludeTestServices: true })("on a real server", (it) => {
    it.effect("publishes values and streams decoded envelopes with subject and headers", () =>
      Effect.gen(function*() {
        const stream = yield* TypedSubject.subscribeScoped(OrderCreated)
        const fiber = yield* stream.pipe(Stream.take(2), Stream.runCollect, Effect.forkChild)
        yield* TypedSubject.publish(OrderCreated, { id: "a", cents: 100 }, { headers: { "x-trace": "t1" } })
        yield* TypedSubject.publish(OrderCreated, { id: "b", cents: 250 })
        const received = yield* Fiber.join(fiber)
        assert.deepStrictEqual(received.map((e) => e.value), [{ id: "a", cents: 100 }, { id: "b", cents: 250 }])
        assert.strictEqual(received[0]?.subject, "typed.orders.created")
        assert.strictEqual(received[0]?.headers?.get("x-trace"), "t1")
        assert.isUndefined(received[1]?.headers)
      }))

    it.effect("a template subscribes to its pattern and parses parameters back", () =>
      Effect.gen(function*() {
        const stream = yield* TypedSubject.subscribeScoped(OrderEvents)
        const fiber = yield* stream.pipe(Stream.take(2), Stream.runCollect, Effect.forkChild)
        yield* TypedSubject.publish(OrderEvents, { id: "42", cents: 1 }, { params: { orderId: "42", event: "paid" } })
        yield* TypedSubject.publish(OrderEvents, { id: "43", cents: 2 }, {
          params: { orderId: "43", event: "shipped" }
        })
        const received = yield* Fiber.join(fiber)
        assert.deepStrictEqual(received.map((e) => [e.subject, e.params]), [
          ["typed.orders.42.paid", { orderId: "42", event: "paid" }],
          ["typed.orders.43.shipped", { orderId: "43", event: "shipped" }]
        ])
      }))

    it.effect("an invalid template parameter fails with InvalidSubject before sending", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(
          TypedSubject.publish(OrderEvents, { id: "x", cents: 1 }, { params: { orderId: "a.b", event: "paid" } })
        )
        assert.strictEqual(error._tag, "NatsError")
        if (error._tag === "NatsError") assert.strictEqual(error.reason._tag, "InvalidSubject")
      }))

    it.effect("a value that does not encode fails with EncodeError and sends nothing", () =>
      Effect.gen(function*() {
        const client = yield* NatsClient.NatsClient
        const before = client.connection.stats().outMsgs
        const error = yield* Effect.flip(
          TypedSubject.publish(OrderCreated, { id: "a", cents: 1.5 })
        )
        assert.strictEqual(error._tag, "EncodeError")
        if (error._tag === "EncodeError") assert.strictEqual(error.subject, "typed.orders.created")
        assert.strictEqual(client.connection.stats().outMsgs, before)
      }))

    it.effect("onDecodeError 'fail': the stream fails with a DecodeError naming the subject", () =>
      Effect.gen(function*() {
        const subject = TypedSubject.make("typed.policy.fail", Order)
        const stream = yield* TypedSubject.subscribeScoped(subject, { onDecodeError: "fail" })
        const fiber = yield* stream.pipe(Stream.runDrain, Effect.flip, Effect.forkChild)
        yield* publishRaw("typed.policy.fail", "{not json")
        const error = yield* Fiber.join(fiber)
        assert.strictEqual(error._tag, "DecodeError")
        if (error._tag === "DecodeError") {
          assert.strictEqual(error.subject, "typed.policy.fail")
          assert.strictEqual(error.contentType, "application/json")
        }
      }))

    it.effect("onDecodeError 'fail' keeps envelopes decoded before the failure", () =>
      Effect.gen(function*() {
        const subject = TypedSubject.make("typed.policy.fail2", Order)
        const seen: Array<string> = []
        const stream = yield* TypedSubject.subscribeScoped(subject, { onDecodeError: "fail" })
        const fiber = yield* stream.pipe(
          Stream.runForEach((e) => Effect.sync(() => seen.push(e.value.id))),
          Effect.flip,
          Effect.forkChild
        )
        yield* TypedSubject.publish(subject, { id: "one", cents: 1 })
        yield* TypedSubject.publish(subject, { id: "two", cents: 2 })
        yield* publishRaw("typed.policy.fail2", JSON.stringify({ id: "bad", cents: "NaN" }))
        const error = yield* Fiber.join(fiber)
        assert.strictEqual(error._tag, "DecodeError")
        assert.deepStrictEqual(seen, ["one", "two"])
      }))

    it.effect("onDecodeError 'logAndSkip' (the default) logs a warning and keeps the subscription", () =>
      Effect.gen(function*() {
        const logs = yield* Ref.make<Array<string>>([])
        const capture = Logger.make<unknown, void>(({ logLevel, message }) => {
          Effect.runSync(Ref.update(logs, (all) => [...all, `${logLevel}:${String(message)}`]))
        })
        const subject = TypedSubject.make("typed.policy.skip", Order)
        const stream = yield* TypedSubject.subscribeScoped(subject)
        const fiber = yield* stream.pipe(
          Stream.take(2),
          Stream.runCollect,
          Effect.provide(Logger.layer([capture])),
          Effect.forkChild
        )
        yield* TypedSubject.publish(subject, { id: "before", cents: 1 })
        yield* publishRaw("typed.policy.skip", "garbage")
        yield* TypedSubject.publish(subject, { id: "after", cents: 2 })
        const received = yield* Fiber.join(fiber)
        assert.deepStrictEqual(received.map((e) => e.value.id), ["before", "after"])
        const warnings = (yield* Ref.get(logs)).filter((l) => l.startsWith("Warn") && l.includes("typed.policy.skip"))
        assert.strictEqual(warnings.length, 1)
      }))

    it.effect("onDecodeError handler receives the error and the raw message; the stream goes on", () =>
      Effect.gen(function*() {
        const poisoned = yield* Ref.make<Array<string>>([])
        const subject = TypedSubject.make("typed.policy.handler", Order)
        const stream = yield* TypedSubject.subscribeScoped(subject, {
          onDecodeError: (error, msg) => Ref.update(poisoned, (all) => [...all, `${error.subject}|${msg.string()}`])
        })
        const fiber = yield* stream.pipe(Stream.take(1), Stream.runCollect, Effect.forkChild)
        yield* publishRaw("typed.policy.handler", "[1,2]")
        yield* TypedSubject.publish(subject, { id: "good", cents: 3 })
        const received = yield* Fiber.join(fiber)
        assert.deepStrictEqual(received.map((e) => e.value.id), ["good"])
        assert.deepStrictEqual(yield* Ref.get(poisoned), ["typed.policy.handler|[1,2]"])
      }))

    it.effect("string and bytes codecs carry their payloads unchanged", () =>
      Effect.gen(function*() {
        const Text = TypedSubject.make("typed.text", Codec.string)
        const Bytes = TypedSubject.make("typed.bytes", Codec.bytes)
        const texts = yield* TypedSubject.subscribeScoped(Text)
        const bytes = yield* TypedSubject.subscribeScoped(Bytes)
        const t = yield* texts.pipe(Stream.take(1), Stream.runCollect, Effect.forkChild)
        const b = yield* bytes.pipe(Stream.take(1), Stream.runCollect, Effect.forkChild)
        yield* TypedSubject.publish(Text, "héllo wörld ✓")
        yield* TypedSubject.publish(Bytes, new Uint8Array([0, 1, 254, 255]))
        assert.deepStrictEqual((yield* Fiber.join(t)).map((e) => e.value), ["héllo wörld ✓"])
        assert.deepStrictEqual((yield* Fiber.join(b)).map((e) => Array.from(e.value)), [[0, 1, 254, 255]])
      }))
  })
})
