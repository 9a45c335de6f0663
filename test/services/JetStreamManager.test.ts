import { assert, describe, layer } from "@effect/vitest"
import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import { Duration, Effect, Layer, Option, Ref, Stream } from "effect"
import { LocalNats, NatsClient } from "../../src/index.ts"
import type { ConsumerConfig } from "../../src/schemas/ConsumerConfig.ts"
import { deliver } from "../../src/schemas/ConsumerConfig.ts"
import type { NatsError, NatsErrorReason } from "../../src/schemas/NatsError.ts"
import type { StreamConfig } from "../../src/schemas/StreamConfig.ts"
import * as JetStreamManager from "../../src/services/JetStreamManager.ts"

const Live = JetStreamManager.JetStreamManager.layer.pipe(Layer.provideMerge(LocalNats.layer()))

/** The reason an effect fails with. */
const reasonOf = <A, R>(effect: Effect.Effect<A, NatsError, R>): Effect.Effect<NatsErrorReason, A, R> =>
  Effect.map(Effect.flip(effect), (error) => error.reason)

/** The stream configuration of the reference article, on its own subjects. */
const ordersConfig = (name: string, subject: string): StreamConfig => ({
  name,
  subjects: [`${subject}.>`],
  maxAge: Duration.days(7),
  storage: "file",
  replicas: 1,
  retention: "limits",
  discard: "old"
})

/**
 * Counts JetStream API requests on a subject pattern (e.g. `$JS.API.STREAM.UPDATE.>`) while the scope lasts,
 * leaving out INFO requests.
 */
const countRequests = (pattern: string) =>
  Effect.gen(function*() {
    const client = yield* NatsClient.NatsClient
    const count = yield* Ref.make(0)
    yield* Effect.acquireRelease(
      Effect.sync(() =>
        client.connection.subscribe(pattern, {
          callback: (_, msg) => {
            if (!msg.subject.includes(".INFO.")) Effect.runSync(Ref.update(count, (n) => n + 1))
          }
        })
      ),
      (sub) => Effect.sync(() => sub.unsubscribe())
    )
    yield* client.flush
    return count
  })

const publish = (subject: string, times: number) =>
  Effect.gen(function*() {
    const client = yield* NatsClient.NatsClient
    const js = jetstream(client.connection)
    for (let i = 0; i < times; i++) {
      yield* Effect.promise(() => js.publish(subject, `m${i}`))
    }
  })

describe("JetStreamManager", () => {
  layer(Live, { excludeTestServices: true })("on a real server", (it) => {
    it.effect("creates a stream with the reference settings; each field takes effect", () =>
      Effect.gen(function*() {
        const jsm = yield* JetStreamManager.JetStreamManager
        const info = yield* jsm.createOrUpdateStream(ordersConfig("ORDERS", "orders"))
        assert.deepStrictEqual(info.config.subjects, ["orders.>"])
        assert.isTrue(Duration.equals(info.config.maxAge ?? Duration.zero, Duration.days(7)))
        assert.strictEqual(info.config.storage, "file")
        assert.strictEqual(info.config.replicas, 1)
        assert.strictEqual(info.config.retention, "limits")
        assert.strictEqual(info.config.discard, "old")
        assert.strictEqual(info.state.messages, 0)
        assert.strictEqual(info.state.consumerCount, 0)
        assert.instanceOf(info.created, Date)
        // what streamInfo reads back is what create returned
        const read = yield* jsm.streamInfo("ORDERS")
        assert.deepStrictEqual(read.config, info.config)
        assert.strictEqual(read.created.getTime(), info.created.getTime())
      }))

    it.effect("create-or-update twice with the same config changes nothing and sends no update", () =>
      Effect.gen(function*() {
        const jsm = yield* JetStreamManager.JetStreamManager
        const updates = yield* countRequests("$JS.API.STREAM.UPDATE.>")
        const first = yield* jsm.createOrUpdateStream(ordersConfig("IDEM", "idem"))
        const second = yield* jsm.createOrUpdateStream(ordersConfig("IDEM", "idem"))
        const read = yield* jsm.streamInfo("IDEM")
        assert.strictEqual(second.created.getTime(), first.created.getTime())
        assert.deepStrictEqual(second.config, first.config)
        assert.deepStrictEqual(read.config, first.config)
        yield* NatsClient.NatsClient.use((c) => c.flush)
        assert.strictEqual(yield* Ref.get(updates), 0)
      }))

    it.effect("a changed mutable field is updated in place", () =>
      Effect.gen(function*() {
        const jsm = yield* JetStreamManager.JetStreamManager
        const before = yield* jsm.createOrUpdateStream(ordersConfig("MUT", "mut"))
        const after = yield* jsm.createOrUpdateStream({
          ...ordersConfig("MUT", "mut"),
          subjects: ["mut.>", "mutation.>"],
          maxAge: Duration.days(1),
          description: "orders, one day",
          maxMsgs: 1000
        })
        assert.deepStrictEqual(after.config.subjects, ["mut.>", "mutation.>"])
        assert.isTrue(Duration.equals(after.config.maxAge ?? Duration.zero, Duration.days(1)))
        assert.strictEqual(after.config.description, "orders, one day")
        assert.strictEqual(after.config.maxMsgs, 1000)
        assert.strictEqual(after.created.getTime(), before.created.getTime())
        const read = yield* jsm.streamInfo("MUT")
        assert.deepStrictEqual(read.config, after.config)
      }))

    it.effect("a changed immutable field fails with JetStreamApi naming the field; the stream is unchanged", () =>
      Effect.gen(function*() {
        const jsm = yield* JetStreamManager.JetStreamManager
        const base = ordersConfig("IMM", "imm")
        const before = yield* jsm.createOrUpdateStream({ ...base, maxConsumers: 10 })
        const cases: ReadonlyArray<readonly [string, StreamConfig]> = [
          ["storage", { ...base, storage: "memory" }],
          ["retention", { ...base, retention: "workqueue" }],
          ["maxConsumers", { ...base, maxConsumers: 20 }],
          // several changes at once: the refused one is named
          ["storage", { ...base, description: "new", storage: "memory" }]
        ]
        for (const [field, config] of cases) {
          const reason = yield* reasonOf(jsm.createOrUpdateStream(config))
          assert.strictEqual(reason._tag, "JetStreamApi")
          if (reason._tag === "JetStreamApi") {
            assert.strictEqual(reason.field, field)
            assert.strictEqual(reason.code, 500)
            assert.strictEqual(reason.errCode, 10052)
          }
        }
        const after = yield* jsm.streamInfo("IMM")
        assert.deepStrictEqual(after.config, before.config)
      }))

    it.effect("a create the server refuses names the field too", () =>
      Effect.gen(function*() {
        const jsm = yield* JetStreamManager.JetStreamManager
        // a single node refuses replicas > 1 on create (10074)
        const replicas = yield* reasonOf(jsm.createOrUpdateStream({ ...ordersConfig("REPL", "repl"), replicas: 3 }))
        assert.strictEqual(replicas._tag, "JetStreamApi")
        if (replicas._tag === "JetStreamApi") {
          assert.strictEqual(replicas.field, "replicas")
          assert.strictEqual(replicas.errCode, 10074)
        }
        // subjects another stream already captures (10065)
        yield* jsm.createOrUpdateStream(ordersConfig("OVER1", "over"))
        const overlap = yield* reasonOf(jsm.createOrUpdateStream({ name: "OVER2", subjects: ["over.x"] }))
        assert.strictEqual(overlap._tag, "JetStreamApi")
        if (overlap._tag === "JetStreamApi") {
          assert.strictEqual(overlap.field, "subjects")
          assert.strictEqual(overlap.errCode, 10065)
        }
        assert.strictEqual((yield* reasonOf(jsm.streamInfo("OVER2")))._tag, "StreamNotFound")
      }))

    it.effect("invalid configurations fail with InvalidArgument before anything is sent", () =>
      Effect.gen(function*() {
        const jsm = yield* JetStreamManager.JetStreamManager
        const creates = yield* countRequests("$JS.API.STREAM.>")
        const dotted = yield* reasonOf(jsm.createOrUpdateStream(ordersConfig("bad.name", "bad")))
        assert.strictEqual(dotted._tag, "InvalidArgument")
        assert.include(dotted.message ?? "", "name")
        const zero = yield* reasonOf(jsm.createOrUpdateStream({ ...ordersConfig("ZERO", "zero"), replicas: 0 }))
        assert.strictEqual(zero._tag, "InvalidArgument")
        assert.include(zero.message ?? "", "replicas")
        const noDurable = yield* reasonOf(jsm.createOrUpdateConsumer("ORDERS", { ackPolicy: "explicit" }))
        assert.strictEqual(noDurable._tag, "InvalidArgument")
        const badPurge = yield* reasonOf(jsm.purgeStream("ORDERS", { keep: 1, upToSequence: 2 }))
        assert.strictEqual(badPurge._tag, "InvalidArgument")
        yield* NatsClient.NatsClient.use((c) => c.flush)
        assert.strictEqual(yield* Ref.get(creates), 0)
      }))

    it.effect("missing streams and consumers fail with StreamNotFound / ConsumerNotFound", () =>
      Effect.gen(function*() {
        const jsm = yield* JetStreamManager.JetStreamManager
        const stream = yield* reasonOf(jsm.streamInfo("NOPE"))
        assert.strictEqual(stream._tag, "StreamNotFound")
        if (stream._tag === "StreamNotFound") assert.strictEqual(stream.stream, "NOPE")
        yield* jsm.createOrUpdateStream(ordersConfig("HASNONE", "hasnone"))
        const consumer = yield* reasonOf(jsm.consumerInfo("HASNONE", "ghost"))
        assert.strictEqual(consumer._tag, "ConsumerNotFound")
        if (consumer._tag === "ConsumerNotFound") {
          assert.strictEqual(consumer.stream, "HASNONE")
          assert.strictEqual(consumer.consumer, "ghost")
        }
        assert.strictEqual((yield* reasonOf(jsm.consumerInfo("NOPE", "ghost")))._tag, "StreamNotFound")
        assert.strictEqual((yield* reasonOf(jsm.deleteStream("NOPE")))._tag, "StreamNotFound")
        assert.strictEqual((yield* reasonOf(jsm.deleteConsumer("HASNONE", "ghost")))._tag, "ConsumerNotFound")
        assert.strictEqual((yield* reasonOf(jsm.purgeStream("NOPE")))._tag, "StreamNotFound")
        assert.strictEqual(
          (yield* reasonOf(jsm.createOrUpdateConsumer("NOPE", { durable: "c" })))._tag,
          "StreamNotFound"
        )
      }))

    it.effect("purge by subject and whole; counts and state follow", () =>
      Effect.gen(function*() {
        const jsm = yield* JetStreamManager.JetStreamManager
        yield* jsm.createOrUpdateStream(ordersConfig("PURGE", "purge"))
        yield* publish("purge.a", 3)
        yield* publish("purge.b", 4)
        const full = yield* jsm.streamInfo("PURGE")
        assert.strictEqual(full.state.messages, 7)
        assert.strictEqual(full.state.firstSeq, 1)
        assert.strictEqual(full.state.lastSeq, 7)
        assert.isAbove(full.state.bytes, 0)
        assert.strictEqual(yield* jsm.purgeStream("PURGE", { subject: "purge.a" }), 3)
        assert.strictEqual((yield* jsm.streamInfo("PURGE")).state.messages, 4)
        assert.strictEqual(yield* jsm.purgeStream("PURGE", { subject: "purge.b", keep: 1 }), 3)
        assert.strictEqual((yield* jsm.streamInfo("PURGE")).state.messages, 1)
        yield* publish("purge.a", 2)
        assert.strictEqual(yield* jsm.purgeStream("PURGE", { upToSequence: 9 }), 2)
        assert.strictEqual(yield* jsm.purgeStream("PURGE"), 1)
        const empty = yield* jsm.streamInfo("PURGE")
        assert.strictEqual(empty.state.messages, 0)
        assert.strictEqual(empty.state.lastSeq, 9)
      }))

    it.effect("getMessage reads by sequence and last by subject; None when absent", () =>
      Effect.gen(function*() {
        const jsm = yield* JetStreamManager.JetStreamManager
        yield* jsm.createOrUpdateStream(ordersConfig("GET", "get"))
        yield* publish("get.a", 2)
        yield* publish("get.b", 1)
        const first = yield* jsm.getMessage("GET", { seq: 1 })
        assert.isTrue(Option.isSome(first))
        if (Option.isSome(first)) {
          assert.strictEqual(first.value.subject, "get.a")
          assert.strictEqual(new TextDecoder().decode(first.value.data), "m0")
          assert.instanceOf(first.value.time, Date)
        }
        const last = yield* jsm.getMessage("GET", { lastBySubject: "get.a" })
        assert.strictEqual(Option.map(last, (m) => m.seq).pipe(Option.getOrUndefined), 2)
        assert.isTrue(Option.isNone(yield* jsm.getMessage("GET", { seq: 99 })))
      }))

    it.effect("delete then info: not found; list returns what was created", () =>
      Effect.gen(function*() {
        const jsm = yield* JetStreamManager.JetStreamManager
        yield* jsm.createOrUpdateStream(ordersConfig("LIST1", "list1"))
        yield* jsm.createOrUpdateStream(ordersConfig("LIST2", "list2"))
        yield* jsm.createOrUpdateConsumer("LIST1", { durable: "c1" })
        yield* jsm.createOrUpdateConsumer("LIST1", { durable: "c2", filterSubject: "list1.x" })
        const names = (yield* Stream.runCollect(jsm.listStreams())).map((s) => s.config.name)
        assert.includeMembers([...names], ["LIST1", "LIST2"])
        const only = yield* Stream.runCollect(jsm.listStreams({ subject: "list2.y" }))
        assert.deepStrictEqual(only.map((s) => s.config.name), ["LIST2"])
        const consumers = yield* Stream.runCollect(jsm.listConsumers("LIST1"))
        assert.deepStrictEqual([...consumers.map((c) => c.name)].sort(), ["c1", "c2"])
        assert.strictEqual((yield* jsm.streamInfo("LIST1")).state.consumerCount, 2)

        yield* jsm.deleteConsumer("LIST1", "c1")
        assert.strictEqual((yield* reasonOf(jsm.consumerInfo("LIST1", "c1")))._tag, "ConsumerNotFound")
        yield* jsm.deleteStream("LIST2")
        assert.strictEqual((yield* reasonOf(jsm.streamInfo("LIST2")))._tag, "StreamNotFound")
        const left = (yield* Stream.runCollect(jsm.listStreams())).map((s) => s.config.name)
        assert.notInclude([...left], "LIST2")
      }))

    it.effect("durable consumers: create, idempotent re-run, allowed updates, refused changes", () =>
      Effect.gen(function*() {
        const jsm = yield* JetStreamManager.JetStreamManager
        yield* jsm.createOrUpdateStream(ordersConfig("CONS", "cons"))
        const config: ConsumerConfig = {
          durable: "worker",
          ackPolicy: "explicit",
          deliverPolicy: deliver.all,
          filterSubject: "cons.>",
          ackWait: Duration.seconds(30),
          maxDeliver: 5
        }
        const updates = yield* countRequests("$JS.API.CONSUMER.>")
        const created = yield* jsm.createOrUpdateConsumer("CONS", config)
        assert.strictEqual(created.name, "worker")
        assert.strictEqual(created.stream, "CONS")
        assert.strictEqual(created.config.ackPolicy, "explicit")
        assert.deepStrictEqual(created.config.deliverPolicy, deliver.all)
        assert.isTrue(Duration.equals(created.config.ackWait ?? Duration.zero, Duration.seconds(30)))
        assert.strictEqual(created.config.maxDeliver, 5)
        yield* NatsClient.NatsClient.use((c) => c.flush)
        assert.strictEqual(yield* Ref.get(updates), 1)

        const again = yield* jsm.createOrUpdateConsumer("CONS", config)
        assert.strictEqual(again.created.getTime(), created.created.getTime())
        assert.deepStrictEqual(again.config, created.config)
        yield* NatsClient.NatsClient.use((c) => c.flush)
        // only an INFO lookup: no CREATE or UPDATE request
        assert.strictEqual(yield* Ref.get(updates), 1)

        const updated = yield* jsm.createOrUpdateConsumer("CONS", {
          ...config,
          ackWait: Duration.seconds(10),
          maxDeliver: 4,
          maxAckPending: 50,
          description: "updated"
        })
        assert.strictEqual(updated.created.getTime(), created.created.getTime())
        assert.isTrue(Duration.equals(updated.config.ackWait ?? Duration.zero, Duration.seconds(10)))
        assert.strictEqual(updated.config.maxDeliver, 4)
        assert.strictEqual(updated.config.maxAckPending, 50)
        assert.strictEqual(updated.config.description, "updated")

        // with a backoff the server sets ackWait to the first step; re-running the same config is still a no-op
        const withBackoff: ConsumerConfig = {
          ...config,
          maxDeliver: 4,
          backoff: [Duration.seconds(1), Duration.seconds(5)]
        }
        const backedOff = yield* jsm.createOrUpdateConsumer("CONS", withBackoff)
        assert.deepStrictEqual(backedOff.config.backoff?.map(Duration.toMillis), [1000, 5000])
        assert.strictEqual(Duration.toMillis(backedOff.config.ackWait ?? Duration.zero), 1000)
        assert.strictEqual(backedOff.config.maxAckPending, 50)
        yield* NatsClient.NatsClient.use((c) => c.flush)
        const beforeRerun = yield* Ref.get(updates)
        const rerun = yield* jsm.createOrUpdateConsumer("CONS", withBackoff)
        assert.deepStrictEqual(rerun.config, backedOff.config)
        yield* NatsClient.NatsClient.use((c) => c.flush)
        assert.strictEqual(yield* Ref.get(updates), beforeRerun)

        const current = yield* jsm.consumerInfo("CONS", "worker")
        assert.deepStrictEqual(current.config, backedOff.config)
        const refused: ReadonlyArray<readonly [string, ConsumerConfig]> = [
          ["ackPolicy", { ...config, ackPolicy: "all" }],
          ["deliverPolicy", { ...config, deliverPolicy: deliver.new }],
          ["replayPolicy", { ...config, replayPolicy: "original" }],
          ["maxWaiting", { ...config, maxWaiting: 10 }]
        ]
        for (const [field, changed] of refused) {
          const reason = yield* reasonOf(jsm.createOrUpdateConsumer("CONS", changed))
          assert.strictEqual(reason._tag, "JetStreamApi", field)
          if (reason._tag === "JetStreamApi") {
            assert.strictEqual(reason.field, field)
            assert.strictEqual(reason.errCode, 10012)
          }
        }
        assert.deepStrictEqual((yield* jsm.consumerInfo("CONS", "worker")).config, backedOff.config)
      }))

    it.effect("consumerInfo reports delivery state; addConsumer makes ephemerals and refuses existing durables", () =>
      Effect.gen(function*() {
        const jsm = yield* JetStreamManager.JetStreamManager
        const client = yield* NatsClient.NatsClient
        yield* jsm.createOrUpdateStream(ordersConfig("STATE", "state"))
        yield* jsm.createOrUpdateConsumer("STATE", { durable: "reader" })
        yield* publish("state.a", 5)
        const consumer = yield* Effect.promise(() => jetstream(client.connection).consumers.get("STATE", "reader"))
        const msgs = yield* Effect.promise(() => consumer.fetch({ max_messages: 2, expires: 1000 }))
        let acked = 0
        yield* Effect.promise(async () => {
          for await (const m of msgs) {
            if (acked === 0) await m.ackAck()
            acked++
          }
        })
        const info = yield* jsm.consumerInfo("STATE", "reader")
        assert.strictEqual(info.delivered.streamSeq, 2)
        assert.strictEqual(info.delivered.consumerSeq, 2)
        assert.instanceOf(info.delivered.lastActive, Date)
        assert.strictEqual(info.ackFloor.streamSeq, 1)
        assert.strictEqual(info.numPending, 3)
        assert.strictEqual(info.numAckPending, 1)
        assert.strictEqual(info.numRedelivered, 0)
        assert.strictEqual(info.numWaiting, 0)

        const ephemeral = yield* jsm.addConsumer("STATE", { inactiveThreshold: Duration.seconds(30) })
        assert.isAbove(ephemeral.name.length, 0)
        assert.isUndefined(ephemeral.config.durable)
        const exists = yield* reasonOf(jsm.addConsumer("STATE", { durable: "reader", maxDeliver: 2 }))
        assert.strictEqual(exists._tag, "JetStreamApi")
        if (exists._tag === "JetStreamApi") assert.strictEqual(exists.field, "durable")
        assert.notStrictEqual((yield* jsm.consumerInfo("STATE", "reader")).config.maxDeliver, 2)
      }))
    it.effect("durable push consumers: deliverSubject and deliverGroup update in place; flowControl and idleHeartbeat are refused", () =>
      Effect.gen(function*() {
        const jsm = yield* JetStreamManager.JetStreamManager
        yield* jsm.createOrUpdateStream(ordersConfig("PUSH", "push"))
        const config: ConsumerConfig = {
          durable: "pusher",
          deliverSubject: "deliver.pusher.1",
          flowControl: true,
          idleHeartbeat: Duration.seconds(5)
        }
        const created = yield* jsm.createOrUpdateConsumer("PUSH", config)
        assert.strictEqual(created.config.deliverSubject, "deliver.pusher.1")
        assert.isTrue(created.config.flowControl)
        assert.isTrue(Duration.equals(created.config.idleHeartbeat ?? Duration.zero, Duration.seconds(5)))

        const updates = yield* countRequests("$JS.API.CONSUMER.>")
        const again = yield* jsm.createOrUpdateConsumer("PUSH", config)
        assert.deepStrictEqual(again.config, created.config)
        yield* NatsClient.NatsClient.use((c) => c.flush)
        assert.strictEqual(yield* Ref.get(updates), 0)

        const moved = yield* jsm.createOrUpdateConsumer("PUSH", { ...config, deliverSubject: "deliver.pusher.2" })
        assert.strictEqual(moved.config.deliverSubject, "deliver.pusher.2")
        assert.strictEqual(moved.created.getTime(), created.created.getTime())

        const refused: ReadonlyArray<readonly [string, ConsumerConfig]> = [
          ["flowControl", { ...config, deliverSubject: "deliver.pusher.2", flowControl: false }],
          ["idleHeartbeat", { ...config, deliverSubject: "deliver.pusher.2", idleHeartbeat: Duration.seconds(2) }]
        ]
        for (const [field, changed] of refused) {
          const reason = yield* reasonOf(jsm.createOrUpdateConsumer("PUSH", changed))
          assert.strictEqual(reason._tag, "JetStreamApi", field)
          if (reason._tag === "JetStreamApi") assert.strictEqual(reason.field, field)
        }

        // a queue group excludes flow control and heartbeats (nats.js refuses them together)
        yield* jsm.createOrUpdateConsumer("PUSH", { durable: "grouped", deliverSubject: "deliver.grouped" })
        const grouped = yield* jsm.createOrUpdateConsumer("PUSH", {
          durable: "grouped",
          deliverSubject: "deliver.grouped",
          deliverGroup: "workers"
        })
        assert.strictEqual(grouped.config.deliverGroup, "workers")
        assert.deepStrictEqual((yield* jsm.consumerInfo("PUSH", "grouped")).config, grouped.config)
      }))

    it.effect("invalid push fields fail with InvalidArgument", () =>
      Effect.gen(function*() {
        const jsm = yield* JetStreamManager.JetStreamManager
        yield* jsm.createOrUpdateStream(ordersConfig("PUSHBAD", "pushbad"))
        const wildcard = yield* reasonOf(jsm.createOrUpdateConsumer("PUSHBAD", { durable: "w", deliverSubject: "d.*" }))
        assert.strictEqual(wildcard._tag, "InvalidArgument")
        assert.include(wildcard.message ?? "", "deliverSubject")
        const heartbeat = yield* reasonOf(
          jsm.createOrUpdateConsumer("PUSHBAD", {
            durable: "h",
            deliverSubject: "d.h",
            idleHeartbeat: Duration.seconds(-1)
          })
        )
        assert.strictEqual(heartbeat._tag, "InvalidArgument")
        assert.include(heartbeat.message ?? "", "idleHeartbeat")
      }))
  })

  layer(LocalNats.layer({ server: { jetstream: false } }), { excludeTestServices: true })(
    "on a server without JetStream",
    (it) => {
      it.effect("building the service fails with JetStreamNotEnabled", () =>
        Effect.gen(function*() {
          const error = yield* Effect.flip(Layer.build(JetStreamManager.JetStreamManager.layer))
          assert.strictEqual(error.reason._tag, "JetStreamNotEnabled")
        }))

      it.effect("an operation on an unchecked manager fails with JetStreamNotEnabled", () =>
        Effect.gen(function*() {
          const client = yield* NatsClient.NatsClient
          const raw = yield* Effect.promise(() => jetstreamManager(client.connection, { checkAPI: false }))
          const jsm = JetStreamManager.makeWith(raw)
          assert.strictEqual((yield* reasonOf(jsm.streamInfo("ANY")))._tag, "JetStreamNotEnabled")
          assert.strictEqual(
            (yield* reasonOf(jsm.createOrUpdateStream(ordersConfig("ANY", "any"))))._tag,
            "JetStreamNotEnabled"
          )
        }))
    }
  )
})
