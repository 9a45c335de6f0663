import { assert, describe, layer } from "@effect/vitest"
import { jetstreamManager } from "@nats-io/jetstream"
import { Arbitrary, Context, Deferred, Effect, Fiber, Option, Schedule, Schema, Stream } from "effect"
import { JetStreamManager, LocalNats, NatsClient, NatsServer } from "../../src/index.ts"
import * as KeyValue from "../../src/services/KeyValue.ts"
import * as FaultProxy from "../support/faultProxy.ts"

const Setting = Schema.Struct({ limit: Schema.Int })

let n = 0
const fresh = (prefix: string) => `${prefix}-${++n}-${Math.random().toString(36).slice(2, 8)}`

const reasonOf = (e: unknown) =>
  typeof e === "object" && e !== null && "reason" in e ? (e as { reason: { _tag: string } }).reason._tag : String(e)

/** A bucket holding `total` keys `k0`, `k1`..., each a value of `size` bytes. */
const filledBucket = (bucket: string, total: number, size: number) =>
  Effect.gen(function*() {
    const kv = yield* KeyValue.make({ bucket, config: { history: 1 } })
    yield* Effect.forEach(
      Array.from({ length: total }, (_, i) => i),
      (i) => kv.put(`k${i}`, new Uint8Array(size)),
      { concurrency: 64, discard: true }
    )
    return kv
  })

describe("KeyValue", () => {
  layer(LocalNats.layer(), { excludeTestServices: true })("on a real server", (it) => {
    it.effect("put, get, create, update (compare-and-set), delete, purge, keys, history: typed", () =>
      Effect.gen(function*() {
        const kv = yield* KeyValue.make({ bucket: fresh("kv"), codec: Setting, config: { history: 10 } })
        assert.isTrue(Option.isNone(yield* kv.get("orders")))
        const r1 = yield* kv.create("orders", { limit: 1 })
        const exists = yield* Effect.flip(kv.create("orders", { limit: 2 }))
        assert.strictEqual(reasonOf(exists), "KeyExists")
        assert.strictEqual(
          exists._tag === "NatsError" && exists.reason._tag === "KeyExists" ? exists.reason.revision : 0,
          r1
        )
        const r2 = yield* kv.update("orders", { limit: 2 }, r1)
        const stale = yield* Effect.flip(kv.update("orders", { limit: 3 }, r1))
        assert.strictEqual(reasonOf(stale), "WrongRevision")
        if (stale._tag === "NatsError" && stale.reason._tag === "WrongRevision") {
          assert.strictEqual(stale.reason.expected, r1)
          assert.strictEqual(stale.reason.current, r2)
        }
        const got = yield* kv.get("orders")
        assert.deepStrictEqual(
          Option.map(got, (e): Array<unknown> => [e.value, e.revision, e.operation]),
          Option.some<Array<unknown>>([{ limit: 2 }, r2, "PUT"])
        )
        yield* kv.put("users", { limit: 5 })
        assert.deepStrictEqual([...(yield* Stream.runCollect(kv.keys()))].sort(), ["orders", "users"])
        yield* kv.delete("users")
        assert.isTrue(Option.isNone(yield* kv.get("users")))
        assert.deepStrictEqual([...(yield* Stream.runCollect(kv.keys()))], ["orders"])
        // a deleted key can be created again
        yield* kv.create("users", { limit: 6 })
        const history = yield* Stream.runCollect(kv.history("orders"))
        assert.deepStrictEqual(history.map((e) => e.value), [{ limit: 1 }, { limit: 2 }])
        yield* kv.purge("orders")
        assert.deepStrictEqual((yield* Stream.runCollect(kv.history("orders"))).map((e) => e.operation), ["PURGE"])
      }))

    // direct gets go through the connection's request mux (internal/kvRequests); a bucket without them
    // through nats.js' get: both read the same entries
    it.effect("get reads the same with direct gets (our request mux) and without them (nats.js' get); puts refused typed", () =>
      Effect.gen(function*() {
        const nats = yield* NatsClient.NatsClient
        const bucket = fresh("kvdirect")
        const direct = yield* KeyValue.make({ bucket, codec: Setting, config: { history: 5 } })
        yield* direct.put("a", { limit: 1 })
        yield* direct.put("a", { limit: 2 })
        yield* direct.put("b.c", { limit: 3 })
        yield* direct.put("gone", { limit: 4 })
        yield* direct.delete("gone")
        const read = (kv: KeyValue.KeyValueShape<{ readonly limit: number }>) =>
          Effect.forEach(
            ["a", "b.c", "gone", "never"],
            (key) =>
              Effect.map(kv.get(key), Option.map((e) => [e.key, e.value, e.revision, e.operation, e.created.getTime()]))
          )
        const viaMux = yield* read(direct)
        assert.deepStrictEqual(viaMux.map(Option.isSome), [true, true, false, false])
        // the same bucket without direct gets (the server then stops answering them)
        const jsm = yield* Effect.promise(() => jetstreamManager(nats.connection))
        yield* Effect.promise(() => jsm.streams.update(`KV_${bucket}`, { allow_direct: false }))
        const plain = yield* KeyValue.make({ bucket, codec: Setting })
        assert.deepStrictEqual(yield* read(plain), viaMux)
        assert.deepStrictEqual(Option.map(viaMux[0] ?? Option.none(), (e) => e[1]), Option.some({ limit: 2 }))
        // a put the server refuses, or one over the connection's max_payload: typed, nothing stored
        const small = yield* KeyValue.make({ bucket: fresh("kvsmall"), config: { maxValueSize: 16 } })
        const refused = yield* Effect.flip(small.put("k", new Uint8Array(32)))
        const tooLarge = yield* Effect.flip(small.put("k", new Uint8Array(2 * 1024 * 1024)))
        assert.strictEqual(reasonOf(refused), "JetStreamApi")
        assert.include(refused.message, "message size exceeds maximum allowed")
        assert.strictEqual(reasonOf(tooLarge), "MaxPayloadExceeded")
        assert.isTrue(Option.isNone(yield* small.get("k")))
      }))

    it.effect("invalid keys, bucket names and options are InvalidArgument before anything is sent", () =>
      Effect.gen(function*() {
        const kv = yield* KeyValue.make({ bucket: fresh("kv"), codec: Schema.String, config: {} })
        for (const key of ["", ".lead", "trail.", "sp ace", "wild*", "a>b"]) {
          assert.strictEqual(reasonOf(yield* Effect.flip(kv.put(key, "x"))), "InvalidArgument", key)
          assert.strictEqual(reasonOf(yield* Effect.flip(kv.get(key))), "InvalidArgument", key)
        }
        assert.strictEqual(reasonOf(yield* Effect.flip(KeyValue.make({ bucket: "no.dots" }))), "InvalidArgument")
        assert.strictEqual(
          reasonOf(yield* Effect.flip(KeyValue.make({ bucket: fresh("kv"), config: { history: 65 } }))),
          "InvalidArgument"
        )
        assert.strictEqual(
          reasonOf(yield* Effect.flip(KeyValue.make({ bucket: fresh("kv"), config: { ttl: "-1 second" } }))),
          "InvalidArgument"
        )
        // a bucket that does not exist, opened without a config
        assert.notStrictEqual(
          reasonOf(yield* Effect.flip(KeyValue.make({ bucket: fresh("missing") }))),
          "InvalidArgument"
        )
      }))

    it.effect("a value past the bucket's TTL is gone", () =>
      Effect.gen(function*() {
        const kv = yield* KeyValue.make({ bucket: fresh("kv"), codec: Schema.String, config: { ttl: "1 second" } })
        yield* kv.put("k", "v")
        assert.isTrue(Option.isSome(yield* kv.get("k")))
        // the server expires values about once a second: polled, for at most 10 s
        yield* kv.get("k").pipe(
          Effect.flatMap((e) => Option.isNone(e) ? Effect.void : Effect.fail("the value outlived its TTL")),
          Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 100 })
        )
      }))

    it.effect("a watch across a server restart delivers every revision once, in order", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        const kv = yield* KeyValue.make({ bucket: fresh("watch"), codec: Schema.Int, config: { history: 64 } })
        const total = 30
        const seen = yield* kv.watch({ include: "allHistory" }).pipe(
          Stream.take(total),
          Stream.map((e) => [e.revision, e.value] as const),
          Stream.runCollect,
          Effect.forkChild
        )
        const write = (from: number, to: number) =>
          Effect.forEach(Array.from({ length: to - from }, (_, i) => from + i), (i) =>
            kv.put(`k${i % 3}`, i).pipe(
              Effect.retry({
                schedule: Schedule.spaced("100 millis"),
                times: 100,
                while: (e) => e._tag === "NatsError" && e.isRetryable
              })
            ), { discard: true })
        yield* write(0, 10)
        yield* server.restart()
        yield* write(10, 20)
        yield* server.restart()
        yield* write(20, total)
        const got = yield* Fiber.join(seen).pipe(Effect.timeout("30 seconds"))
        assert.deepStrictEqual(got.map(([revision]) => revision), Array.from({ length: total }, (_, i) => i + 1))
        assert.deepStrictEqual(got.map(([, value]) => value), Array.from({ length: total }, (_, i) => i))
      }), 60_000)

    it.effect("a value that does not decode: skipped by watch and history (default), failed or handled by policy", () =>
      Effect.gen(function*() {
        const bucket = fresh("decode")
        const bytes = yield* KeyValue.make({ bucket, config: { history: 10 } })
        const text = new TextEncoder()
        yield* bytes.put("a", text.encode(JSON.stringify({ limit: 1 })))
        yield* bytes.put("b", text.encode("not json"))
        yield* bytes.put("a", text.encode(JSON.stringify({ limit: "two" })))
        yield* bytes.put("a", text.encode(JSON.stringify({ limit: 3 })))
        const skipping = yield* KeyValue.make({ bucket, codec: Setting })
        const watched = yield* skipping.watch({ include: "allHistory" }).pipe(Stream.take(2), Stream.runCollect)
        assert.deepStrictEqual(watched.map((e) => [e.key, e.revision, e.value]), [
          ["a", 1, { limit: 1 }],
          ["a", 4, { limit: 3 }]
        ])
        assert.deepStrictEqual((yield* Stream.runCollect(skipping.history("a"))).map((e) => e.revision), [1, 4])
        // "fail": the values before it, then the DecodeError naming the key
        const failing = yield* KeyValue.make({ bucket, codec: Setting, onDecodeError: "fail" })
        const before: Array<number> = []
        const error = yield* failing.watch({ include: "allHistory" }).pipe(
          Stream.runForEach((e) => Effect.sync(() => before.push(e.revision))),
          Effect.flip
        )
        assert.deepStrictEqual(before, [1])
        assert.strictEqual(error._tag, "DecodeError")
        assert.include(error._tag === "DecodeError" ? error.subject ?? "" : "", `${bucket}.b`)
        assert.strictEqual((yield* Effect.flip(Stream.runCollect(failing.history("a"))))._tag, "DecodeError")
        assert.strictEqual((yield* Effect.flip(failing.get("b")))._tag, "DecodeError")
        // a handler sees each entry that did not decode, and the watch goes on
        const handled: Array<number> = []
        const handling = yield* KeyValue.make({
          bucket,
          codec: Setting,
          onDecodeError: (_error, entry) => Effect.sync(() => handled.push(entry.revision))
        })
        const last = yield* handling.watch({ include: "allHistory" }).pipe(Stream.take(2), Stream.runCollect)
        assert.deepStrictEqual(last.map((e) => e.revision), [1, 4])
        assert.deepStrictEqual(handled, [2, 3])
      }))

    it.effect("a bucket as an application's own service, through KeyValue.layer", () =>
      Effect.gen(function*() {
        class Settings extends Context.Service<Settings, KeyValue.KeyValueShape<typeof Setting.Type>>()(
          "test/Settings"
        ) {}
        const bucket = fresh("layer")
        const revision = yield* Effect.gen(function*() {
          const settings = yield* Settings
          return yield* settings.put("orders", { limit: 7 })
        }).pipe(Effect.provide(KeyValue.layer(Settings, { bucket, codec: Setting, config: {} })))
        const again = yield* KeyValue.make({ bucket, codec: Setting })
        assert.deepStrictEqual(
          Option.map(yield* again.get("orders"), (e) => [e.value, e.revision]),
          Option.some([{ limit: 7 }, revision])
        )
      }))

    it.effect(
      "keys and history read through a cut connection end complete, never short (nats.js issue #426)",
      () =>
        Effect.gen(function*() {
          const server = yield* NatsServer.NatsServer
          const bucket = fresh("cut")
          const direct = yield* KeyValue.make({ bucket, config: { history: 64 } })
          const total = 2000
          yield* Effect.forEach(
            Array.from({ length: total }, (_, i) => i),
            (i) => direct.put(`k${i}`, new Uint8Array(64)),
            {
              concurrency: 64,
              discard: true
            }
          )
          const big = new Uint8Array(200_000)
          for (let i = 0; i < 64; i++) yield* direct.put("big", big)
          const proxy = yield* FaultProxy.make(server.url)
          const client = yield* NatsClient.make({
            servers: proxy.url,
            reconnectSchedule: Schedule.spaced("100 millis"),
            logEvents: false
          })
          const viaProxy = yield* KeyValue.make({ bucket }).pipe(Effect.provideService(NatsClient.NatsClient, client))
          /** Reads the Stream slowly and cuts the connection once, after `after` elements. */
          const cutDuring = <A, E>(stream: Stream.Stream<A, E>, after: number) => {
            let seen = 0
            return stream.pipe(
              Stream.tap(() =>
                ++seen === after ? proxy.cut() : seen % 50 === 0 ? Effect.sleep("1 millis") : Effect.void
              ),
              Stream.runCount,
              Effect.result
            )
          }
          // read on after the last entry received once the client is back (within 100 ms): complete
          const keys = yield* cutDuring(viaProxy.keys(), 300)
          assert.strictEqual(keys._tag === "Success" ? keys.success : `failed: ${String(keys.failure)}`, total + 1)
          const history = yield* cutDuring(viaProxy.history("big"), 10)
          assert.strictEqual(history._tag === "Success" ? history.success : `failed: ${String(history.failure)}`, 64)
          assert.isAtLeast(proxy.accepted(), 3, "the connection was cut twice")
        }),
      60_000
    )

    it.effect(
      "a read whose consumer is deleted under it reads on after its last entry: all of them, once",
      () =>
        Effect.gen(function*() {
          const bucket = fresh("gone")
          const total = 2000
          const kv = yield* filledBucket(bucket, total, 1)
          const jsm = yield* JetStreamManager.make()
          const halfway = yield* Deferred.make<void>()
          const resume = yield* Deferred.make<void>()
          const reading = yield* kv.watch().pipe(
            Stream.take(total),
            Stream.mapEffect((entry) =>
              entry.revision === 100
                ? Deferred.succeed(halfway, undefined).pipe(
                  Effect.andThen(Deferred.await(resume)),
                  Effect.as(entry.key)
                )
                : Effect.succeed(entry.key)
            ),
            Stream.runCollect,
            Effect.forkChild
          )
          yield* Deferred.await(halfway)
          // the read's consumer, deleted by someone else while entries are still to come
          const consumers = yield* Stream.runCollect(jsm.listConsumers(`KV_${bucket}`))
          assert.strictEqual(consumers.length, 1)
          for (const c of consumers) yield* jsm.deleteConsumer(`KV_${bucket}`, c.name)
          yield* Deferred.succeed(resume, undefined)
          const keys = yield* Fiber.join(reading).pipe(Effect.timeout("20 seconds"))
          assert.strictEqual(keys.length, total)
          assert.strictEqual(new Set(keys).size, total)
        }),
      30_000
    )

    it.effect("an unread watch holds a bounded number of entries (the server waits), not the whole bucket", () =>
      Effect.gen(function*() {
        const bucket = fresh("bounded")
        const total = 3000
        const kv = yield* filledBucket(bucket, total, 1024)
        const first = yield* Deferred.make<void>()
        const watching = yield* kv.watch().pipe(
          Stream.tap(() => Deferred.succeed(first, undefined)),
          Stream.mapEffect(() => Effect.never),
          Stream.runDrain,
          Effect.forkChild
        )
        yield* Deferred.await(first)
        yield* Effect.sleep("500 millis")
        const jsm = yield* JetStreamManager.make()
        const [consumer] = yield* Stream.runCollect(jsm.listConsumers(`KV_${bucket}`))
        assert.isDefined(consumer)
        // a pull of 1,000 entries, and 250 more each time the reader took 250 (the chunk it is stuck on,
        // then the Stream's buffer of 256): 1,500 at most, whatever the bucket holds
        assert.isAtMost(consumer?.delivered.streamSeq ?? total, 1500, "delivered to the client while unread")
        yield* Fiber.interrupt(watching)
      }))

    // A model: a Map of key → value; every operation agrees on get, keys and (for PUTs) history.
    type Op =
      | { readonly _tag: "put"; readonly key: string; readonly value: number }
      | { readonly _tag: "create"; readonly key: string; readonly value: number }
      | { readonly _tag: "update"; readonly key: string; readonly value: number; readonly stale: boolean }
      | { readonly _tag: "delete"; readonly key: string }
      | { readonly _tag: "purge"; readonly key: string }
    const Key = Schema.Literals(["a", "b", "c.d"])
    const Value = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 99 }))
    const OpSchema = Schema.Union([
      Schema.TaggedStruct("put", { key: Key, value: Value }),
      Schema.TaggedStruct("create", { key: Key, value: Value }),
      Schema.TaggedStruct("update", { key: Key, value: Value, stale: Schema.Boolean }),
      Schema.TaggedStruct("delete", { key: Key }),
      Schema.TaggedStruct("purge", { key: Key })
    ])
    const op = Arbitrary.schema(OpSchema) as Arbitrary.Arbitrary<Op>
    it.effect.prop(
      "agrees with an in-memory model on get, keys and history",
      [Arbitrary.array(op, { maxLength: 25 })],
      ([ops]) =>
        Effect.gen(function*() {
          const kv = yield* KeyValue.make({
            bucket: fresh("model"),
            codec: Schema.Int,
            config: { history: 64, storage: "memory" }
          })
          const model = new Map<string, { value: number; revision: number }>()
          const puts = new Map<string, Array<number>>()
          for (const o of ops) {
            const current = model.get(o.key)
            switch (o._tag) {
              case "put": {
                const revision = yield* kv.put(o.key, o.value)
                model.set(o.key, { value: o.value, revision })
                puts.set(o.key, [...(puts.get(o.key) ?? []), o.value])
                break
              }
              case "create": {
                const result = yield* Effect.result(kv.create(o.key, o.value))
                if (current === undefined) {
                  assert.isTrue(result._tag === "Success", "create of an absent key")
                  if (result._tag === "Success") model.set(o.key, { value: o.value, revision: result.success })
                  puts.set(o.key, [...(puts.get(o.key) ?? []), o.value])
                } else {
                  assert.strictEqual(result._tag === "Failure" ? reasonOf(result.failure) : "", "KeyExists")
                }
                break
              }
              case "update": {
                const expected = current === undefined ? 1 : o.stale ? current.revision + 1000 : current.revision
                const result = yield* Effect.result(kv.update(o.key, o.value, expected))
                if (current !== undefined && !o.stale) {
                  assert.isTrue(result._tag === "Success", "update at the current revision")
                  if (result._tag === "Success") model.set(o.key, { value: o.value, revision: result.success })
                  puts.set(o.key, [...(puts.get(o.key) ?? []), o.value])
                } else if (result._tag === "Success") {
                  // revision 1 of a key that never had a value: the bucket's sequence 1 may be this key's last
                  model.set(o.key, { value: o.value, revision: result.success })
                  puts.set(o.key, [...(puts.get(o.key) ?? []), o.value])
                } else {
                  assert.strictEqual(reasonOf(result.failure), "WrongRevision")
                }
                break
              }
              case "delete":
                yield* kv.delete(o.key)
                model.delete(o.key)
                break
              case "purge":
                yield* kv.purge(o.key)
                model.delete(o.key)
                puts.delete(o.key)
                break
            }
          }
          for (const k of ["a", "b", "c.d"]) {
            const got = yield* kv.get(k)
            const want = model.get(k)
            assert.deepStrictEqual(
              Option.map(got, (e) => [e.value, e.revision]),
              want === undefined ? Option.none() : Option.some([want.value, want.revision]),
              k
            )
            const history = yield* Stream.runCollect(kv.history(k))
            assert.deepStrictEqual(
              history.filter((e) => e.operation === "PUT").map((e) => e.value),
              puts.get(k) ?? [],
              `history of ${k}`
            )
          }
          assert.deepStrictEqual([...(yield* Stream.runCollect(kv.keys()))].sort(), [...model.keys()].sort())
        }),
      { arbitrary: { runs: 30 }, timeout: 60_000 }
    )
  })
})
