/**
 * A stalled network, on a real server: the client reaches nats-server only
 * through a TCP fault proxy that stops forwarding (sockets kept open: a
 * connection that hangs, not one that closes) for ~3 s in the middle of a
 * JetStream `publishAll`. The client must notice by its pings
 * (`Disconnected`), reconnect through the proxy once it forwards again, and
 * the retry schedule with msgIds must store every message exactly once —
 * including the copies the dead connection still delivers when the proxy
 * resumes.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Schedule, Stream } from "effect"
import type { ConnectionEvent } from "../../src/index.ts"
import { JetStream, JetStreamManager, NatsClient, NatsServer } from "../../src/index.ts"
import * as FaultProxy from "../support/faultProxy.ts"

const encoder = new TextEncoder()

/** Until `f` holds (polled every 100 ms, for at most 10 s). */
const eventually = <A, E, R>(f: Effect.Effect<A, E, R>, holds: (a: A) => boolean) =>
  f.pipe(
    Effect.flatMap((a) => holds(a) ? Effect.succeed(a) : Effect.fail("not yet" as const)),
    Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 100 })
  )

describe("a stalled network (fault proxy)", { timeout: 30_000 }, () => {
  it.live("the proxy forwards, stalls without closing, resumes and cuts", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.NatsServer
      const proxy = yield* FaultProxy.make(server.url)
      assert.match(proxy.url, /^nats:\/\/127\.0\.0\.1:\d+$/)
      const client = yield* NatsClient.make({
        servers: proxy.url,
        reconnectSchedule: Schedule.spaced("100 millis"),
        logEvents: false
      })
      yield* client.flush
      assert.strictEqual(proxy.open(), 1)
      yield* proxy.stall()
      // nothing gets through, and the connection is still open at both ends
      const stalled = yield* client.flush.pipe(Effect.timeoutOption("700 millis"))
      assert.isTrue(stalled._tag === "None", "a flush gets no answer while stalled")
      assert.strictEqual(proxy.open(), 1, "the stalled connection is kept open")
      yield* proxy.resume()
      yield* client.flush
      // a cut closes the connection: the client reconnects through the proxy at once
      const events = yield* client.eventsScoped
      const reconnected = yield* events.pipe(
        Stream.filter((e) => e._tag === "Reconnected"),
        Stream.runHead,
        Effect.forkChild
      )
      yield* proxy.cut()
      yield* Fiber.join(reconnected).pipe(Effect.timeout("5 seconds"))
      yield* client.flush
      assert.strictEqual(proxy.accepted(), 2)
    }).pipe(Effect.provide(NatsServer.layer())))

  it.live("publishAll with retry and msgIds through a ~3 s stall: noticed, reconnected, every message stored once", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.NatsServer
      const proxy = yield* FaultProxy.make(server.url)
      const events: Array<{ readonly at: number; readonly event: ConnectionEvent.ConnectionEvent }> = []
      const disconnected = yield* Deferred.make<number>()
      const client = yield* NatsClient.make({
        servers: proxy.url,
        // stale after 2 unanswered pings (nats.js' maxPingOut): ~1-1.5 s into the stall
        pingInterval: "500 millis",
        reconnectSchedule: Schedule.spaced("200 millis"),
        connectAttemptTimeout: "1 second",
        logEvents: false,
        onEvent: (event) =>
          Effect.gen(function*() {
            events.push({ at: Date.now(), event })
            if (event._tag === "Disconnected") yield* Deferred.succeed(disconnected, Date.now())
          })
      })
      const services = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
        effect.pipe(Effect.provideService(NatsClient.NatsClient, client))
      const jsm = yield* services(JetStreamManager.make())
      const js = yield* services(JetStream.make())
      yield* jsm.createOrUpdateStream({ name: "STALL", subjects: ["stall.>"] })

      const count = 2000
      const messages = Array.from({ length: count }, (_, i) => ({
        subject: `stall.${i % 4}`,
        payload: encoder.encode(`${i}`),
        msgId: `stall-${i}`
      }))
      const retry = Schedule.spaced("200 millis").pipe(Schedule.upTo({ times: 100 }))
      let acked = 0
      let duplicates = 0
      let stalledAt = 0
      let resumedAt = 0
      let firstAfterStall = 0
      // the stall: at least 3 s, and until the client noticed (at most 6 s)
      const fault = Effect.gen(function*() {
        yield* proxy.stall()
        stalledAt = Date.now()
        yield* Effect.all([
          Effect.sleep("3 seconds"),
          Deferred.await(disconnected).pipe(Effect.timeoutOption("6 seconds"))
        ], { concurrency: 2 })
        yield* proxy.resume()
        resumedAt = Date.now()
      })
      let faultFiber: Fiber.Fiber<void> | undefined
      yield* js.publishAll(messages, { window: 64, retry, timeout: "2 seconds" }).pipe(
        Stream.runForEach((ack) =>
          Effect.gen(function*() {
            assert.strictEqual(ack.index, acked, "acks in input order")
            assert.strictEqual(ack.msgId, `stall-${ack.index}`)
            acked++
            if (ack.duplicate) duplicates++
            if (stalledAt > 0 && firstAfterStall === 0) firstAfterStall = Date.now()
            if (acked === 500) faultFiber = yield* Effect.forkChild(fault)
          })
        ),
        Effect.timeout("20 seconds")
      )
      if (faultFiber !== undefined) yield* Fiber.join(faultFiber)

      assert.strictEqual(acked, count, "every message acked")
      const disconnectedAt = yield* Deferred.await(disconnected)
      assert.isTrue(
        disconnectedAt > stalledAt && disconnectedAt < resumedAt,
        `Disconnected while stalled (${disconnectedAt - stalledAt} ms into a ${resumedAt - stalledAt} ms stall)`
      )
      const tags = events.map((e) => e.event._tag)
      assert.include(tags, "Reconnected")
      assert.isTrue(proxy.accepted() >= 2, "reconnected through the proxy")
      assert.isTrue(firstAfterStall >= resumedAt, "no ack while nothing was forwarded")
      // the dead connection's bytes reach the server after the resume too (deduplicated by msgId): once
      // the proxy has forwarded them, that connection ends and only the new one is open
      yield* eventually(Effect.sync(() => proxy.open()), (open) => open === 1)
      yield* client.flush
      const info = yield* eventually(jsm.streamInfo("STALL"), (i) => i.state.messages >= count)
      assert.strictEqual(info.state.messages, count, `every message stored exactly once (${duplicates} dup acks)`)
      assert.strictEqual(info.state.lastSeq, count, "no sequence spent on a second copy")
    }).pipe(Effect.provide(NatsServer.layer())))
})
