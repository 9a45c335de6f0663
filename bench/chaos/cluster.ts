/**
 * 3-node cluster faults on R3 streams, the client on a node that does not
 * lead: (c) the stream leader is killed in the middle of a `publishAll`;
 * (d) the leader of a durable pull consumer is killed while it is consumed
 * (messages published at a steady pace throughout).
 */
import type { Scope } from "effect"
import { Duration, Effect, Fiber, Schedule, Stream } from "effect"
import type { NatsServer as NatsServerNs } from "../../src/index.ts"
import { Consumer, NatsServer } from "../../src/index.ts"
import type { Tally } from "./common.ts"
import { connect, idOf, messages, nodeIndex, phase, publish, readStored, services, settled, until } from "./common.ts"

/** A client on node `on` first, the others listed for its reconnects. */
const clientOn = (server: NatsServerNs.NatsServerShape, on: number) =>
  connect([
    ...server.nodes.filter((n) => n.index === on).map((n) => n.url),
    ...server.nodes.filter((n) => n.index !== on).map((n) => n.url)
  ])

/** Waits for a leader (right after creation there may be none yet): its node index. */
const leaderIndex = <E, R>(
  server: NatsServerNs.NatsServerShape,
  info: Effect.Effect<{ readonly cluster: { readonly leader: string | undefined } | undefined }, E, R>
) =>
  info.pipe(
    Effect.flatMap((i) => {
      const index = nodeIndex(server, i.cluster?.leader)
      return index < 0 ? Effect.fail("no leader yet" as const) : Effect.succeed(index)
    }),
    Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 100 })
  )

/** Creates the R3 stream (and a durable consumer) through a short-lived client on node 0. */
const setup = (server: NatsServerNs.NatsServerShape, stream: string, durable?: string) =>
  Effect.scoped(Effect.gen(function*() {
    const svc = yield* services(yield* clientOn(server, 0))
    yield* svc.jsm.createOrUpdateStream({ name: stream, subjects: [`${stream.toLowerCase()}.>`], replicas: 3 })
    const streamLeader = yield* leaderIndex(server, svc.jsm.streamInfo(stream))
    if (durable === undefined) return { streamLeader, consumerLeader: -1 }
    yield* svc.jsm.createOrUpdateConsumer(stream, { durable, ackWait: Duration.seconds(5) })
    const consumerLeader = yield* leaderIndex(server, svc.jsm.consumerInfo(stream, durable))
    return { streamLeader, consumerLeader }
  }))

export const streamLeaderKill = (tally: Tally): Effect.Effect<void, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const server = yield* NatsServer.make({ cluster: 3 })
    const { streamLeader } = yield* setup(server, "CHAOS_C")
    const on = (streamLeader + 1) % 3
    const svc = yield* services(yield* clientOn(server, on))
    const fault = Effect.gen(function*() {
      tally.fault()
      yield* server.kill(streamLeader)
      // the old leader is dead: every ack from now on comes from a new one
      tally.arm()
    }).pipe(Effect.catch((e) => Effect.sync(() => tally.errors.push(`kill: ${e.message}`))))
    yield* phase(
      tally,
      "publish",
      publish(svc, tally, messages(tally, "chaos_c", 8000), (acked) =>
        Effect.suspend(() => {
          tally.success()
          return acked === 2000 ? Effect.asVoid(Effect.forkScoped(fault)) : Effect.void
        })),
      45
    )
    yield* readStored(svc, "CHAOS_C", tally)
    const after = yield* leaderIndex(server, svc.jsm.streamInfo("CHAOS_C")).pipe(Effect.orElseSucceed(() => -1))
    Object.assign(tally.extra, { killed: `n${streamLeader}`, clientOn: `n${on}`, newLeader: `n${after}` })
  })

export const consumerLeaderKill = (tally: Tally): Effect.Effect<void, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    tally.consumes = true
    const server = yield* NatsServer.make({ cluster: 3 })
    const { consumerLeader, streamLeader } = yield* setup(server, "CHAOS_D", "worker")
    const on = (consumerLeader + 1) % 3
    const svc = yield* services(yield* clientOn(server, on))
    const consumer = yield* Consumer.make({ stream: "CHAOS_D", durable: "worker" }).pipe(Effect.provide(svc.context))
    const statuses: Record<string, number> = {}
    yield* consumer.status.pipe(
      Stream.runForEach((s) =>
        Effect.sync(() => {
          if (s._tag !== "Heartbeat") statuses[s._tag] = (statuses[s._tag] ?? 0) + 1
        })
      ),
      Effect.forkScoped
    )
    let last = 0
    let longestGap = 0
    let ackErrors = 0
    yield* consumer.consume().pipe(
      Stream.runForEach((m) =>
        Effect.gen(function*() {
          const id = idOf(m.value)
          tally.delivered(id)
          const acked = yield* Effect.result(m.ack)
          if (acked._tag === "Failure") return void ackErrors++
          tally.done(id)
          tally.success()
          const now = Date.now()
          if (tally.faultAt > 0) longestGap = Math.max(longestGap, now - Math.max(last, tally.faultAt))
          last = now
        })
      ),
      Effect.forkScoped
    )
    const count = 3000
    // 500 messages/s for 6 s: the consumer is fed before, during and after the election
    const publisher = yield* publish(svc, tally, messages(tally, "chaos_d", count, { perTick: 5, tickMs: 10 })).pipe(
      Effect.forkScoped
    )
    yield* phase(
      tally,
      "fault",
      Effect.gen(function*() {
        yield* until(() => tally.completed.size >= 600, 20_000)
        tally.fault()
        yield* server.kill(consumerLeader)
        tally.arm()
      }),
      25
    )
    yield* phase(tally, "publish", Fiber.join(publisher), 40)
    yield* phase(tally, "settle", until(() => [...tally.acked].every((id) => tally.completed.has(id)), 30_000), 32)
    const info = yield* settled(svc, "CHAOS_D", "worker", 10)
    yield* readStored(svc, "CHAOS_D", tally)
    const after = yield* leaderIndex(server, svc.jsm.consumerInfo("CHAOS_D", "worker")).pipe(
      Effect.orElseSucceed(() => -1)
    )
    Object.assign(tally.extra, {
      killed: `n${consumerLeader}`,
      killedAlsoLedStream: consumerLeader === streamLeader,
      clientOn: `n${on}`,
      newLeader: `n${after}`,
      longestGapMs: longestGap,
      ackErrors,
      serverRedelivered: info?.numRedelivered,
      statuses
    })
  })
