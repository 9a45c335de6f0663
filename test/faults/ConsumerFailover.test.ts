/**
 * Consuming through faults on a 3-node cluster: the node that leads a
 * durable pull consumer is killed (its replicas elect a new leader; pulls
 * waiting at the old one are lost, and the first requests after the kill get
 * no answer or a "409 Leadership Change"). Messages must flow again within
 * 10 s, nothing acked may be lost, and `status` says what happened.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Fiber, Layer, Ref, Schedule, Stream } from "effect"
import type { Consumer as ConsumerShape } from "../../src/index.ts"
import { Consumer, JetStream, JetStreamManager, NatsServer } from "../../src/index.ts"
import { leaderOf, servicesOn } from "./cluster.ts"

const encoder = new TextEncoder()
const decoder = new TextDecoder()

const retry = Schedule.spaced("200 millis").pipe(Schedule.upTo({ times: 100 }))

/**
 * Publishes `count` messages (one every 5 ms) while a consumer acks them;
 * kills the consumer's leader after `killAfter` acks. Returns when all are
 * acked: the time from the kill to the first message after it, the statuses seen.
 */
const run = (name: string, clientOnLeader: boolean) =>
  Effect.gen(function*() {
    const server = yield* NatsServer.NatsServer
    const setup = Effect.gen(function*() {
      const jsm = yield* JetStreamManager.JetStreamManager
      yield* jsm.createOrUpdateStream({ name, subjects: [`${name}.>`], replicas: 3 })
      yield* jsm.createOrUpdateConsumer(name, { durable: "worker", ackWait: Duration.seconds(5) })
      return yield* leaderOf(name, "worker")
    })
    const leader = yield* setup.pipe(Effect.provide(servicesOn(0)))
    const on = clientOnLeader ? leader : (leader + 1) % 3
    return yield* Effect.gen(function*() {
      const js = yield* JetStream.JetStream
      const consumer: ConsumerShape.ConsumerShape = yield* Consumer.make({ stream: name, durable: "worker" })
      const count = 600
      const seen = new Set<number>()
      const statuses = yield* Ref.make<Array<string>>([])
      yield* consumer.status.pipe(
        Stream.runForEach((s) => Ref.update(statuses, (all) => [...all, s._tag])),
        Effect.forkScoped
      )
      let killedAt = 0
      let last = 0
      // the longest pause between two deliveries from the kill on (messages are published every 5 ms)
      let longestGap = 0
      const all = yield* Deferred.make<void>()
      yield* consumer.consume().pipe(
        Stream.runForEach((m) =>
          Effect.gen(function*() {
            seen.add(Number(decoder.decode(m.value)))
            yield* m.ack
            const now = Date.now()
            if (killedAt > 0) longestGap = Math.max(longestGap, now - Math.max(last, killedAt))
            last = now
            if (seen.size === count) yield* Deferred.succeed(all, undefined)
          })
        ),
        Effect.forkScoped
      )
      const publisher = yield* Effect.forEach(Array.from({ length: count }, (_, i) => i), (i) =>
        Effect.gen(function*() {
          yield* js.publish(`${name}.a`, encoder.encode(`${i}`), { msgId: `${name}-${i}`, retry })
          if (i === 200) {
            killedAt = Date.now()
            yield* server.kill(leader)
          }
          yield* Effect.sleep("5 millis")
        }), { discard: true }).pipe(Effect.forkScoped)
      yield* Fiber.join(publisher)
      yield* Deferred.await(all).pipe(Effect.timeout("40 seconds"))
      const seenStatuses = (yield* Ref.get(statuses)).filter((tag) => tag !== "Heartbeat")
      return { resumedIn: longestGap, seen: seen.size, statuses: seenStatuses }
    }).pipe(Effect.scoped, Effect.provide(servicesOn(on)))
  })

describe("consuming through a consumer-leader kill (3-node cluster)", { timeout: 120_000 }, () => {
  it.live("client on another node: messages flow again within 10 s, none lost", () =>
    Effect.gen(function*() {
      const result = yield* run("CFAIL", false)
      assert.strictEqual(result.seen, 600)
      assert.isTrue(result.resumedIn < 10_000, `resumed in ${result.resumedIn} ms; statuses ${result.statuses}`)
    }).pipe(Effect.provide(NatsServer.layer({ cluster: 3 }))))

  it.live("client on the leader's node: it reconnects elsewhere, messages flow again within 10 s", () =>
    Effect.gen(function*() {
      const result = yield* run("CFAIL2", true)
      assert.strictEqual(result.seen, 600)
      assert.isTrue(result.resumedIn < 10_000, `resumed in ${result.resumedIn} ms; statuses ${result.statuses}`)
    }).pipe(Effect.provide(NatsServer.layer({ cluster: 3 }))))
})

describe("the stall watchdog (single node)", { timeout: 60_000 }, () => {
  const Env = servicesOn(0).pipe(Layer.provideMerge(NatsServer.layer({})))

  /** The statuses of `consumer` other than heartbeats, while `during` runs. */
  const statusesDuring = <A, E, R>(consumer: ConsumerShape.ConsumerShape, during: Effect.Effect<A, E, R>) =>
    Effect.gen(function*() {
      const statuses = yield* Ref.make<Array<string>>([])
      yield* consumer.status.pipe(
        Stream.runForEach((s) =>
          s._tag === "Heartbeat" ? Effect.void : Ref.update(statuses, (all) => [...all, s._tag])
        ),
        Effect.forkScoped
      )
      const result = yield* during
      return { result, statuses: yield* Ref.get(statuses) }
    })

  it.live("an idle consume (heartbeats only) and one whose Stream is full for 4 s are not stalled", () =>
    Effect.gen(function*() {
      const jsm = yield* JetStreamManager.JetStreamManager
      const js = yield* JetStream.JetStream
      yield* jsm.createOrUpdateStream({ name: "IDLE", subjects: ["idle.>"] })
      yield* jsm.createOrUpdateConsumer("IDLE", { durable: "idle", filterSubject: "idle.quiet" })
      // no max_ack_pending: nats.js' iterator, so a full Stream pulls nothing (silence is expected)
      yield* jsm.createOrUpdateConsumer("IDLE", { durable: "full", filterSubject: "idle.busy", maxAckPending: -1 })
      yield* Stream.runDrain(js.publishAll(Array.from({ length: 50 }, () => ({ subject: "idle.busy" }))))
      const idle = yield* Consumer.make({ stream: "IDLE", durable: "idle" })
      const full = yield* Consumer.make({ stream: "IDLE", durable: "full" })
      const [quiet, busy] = yield* Effect.all([
        statusesDuring(
          idle,
          idle.consume().pipe(Stream.runDrain, Effect.timeoutOption("4500 millis"))
        ),
        statusesDuring(
          full,
          full.consume({ bufferSize: 1, maxMessages: 5 }).pipe(
            Stream.runForEach((m) => Effect.andThen(Effect.sleep("4500 millis"), m.ack)),
            Effect.timeoutOption("4600 millis")
          )
        )
      ], { concurrency: "unbounded" })
      assert.notInclude(quiet.statuses, "Stalled")
      assert.notInclude(busy.statuses, "Stalled")
    }).pipe(Effect.scoped, Effect.provide(Env)))

  it.live("idleHeartbeat above half of expires is an InvalidArgument before anything is pulled", () =>
    Effect.gen(function*() {
      const jsm = yield* JetStreamManager.JetStreamManager
      yield* jsm.createOrUpdateStream({ name: "HBARG", subjects: ["hbarg.>"] })
      yield* jsm.createOrUpdateConsumer("HBARG", { durable: "d" })
      const consumer = yield* Consumer.make({ stream: "HBARG", durable: "d" })
      const error = yield* consumer.consume({ expires: "2 seconds", idleHeartbeat: "1500 millis" }).pipe(
        Stream.runDrain,
        Effect.flip
      )
      assert.strictEqual(error._tag === "NatsError" ? error.reason._tag : error._tag, "InvalidArgument")
    }).pipe(Effect.scoped, Effect.provide(Env)))
})
