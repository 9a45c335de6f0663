/**
 * What every chaos scenario shares: the tally of what happened to each
 * message (sent, acked, stored, delivered, processed), the row it becomes,
 * clients and services on throwaway servers, paced publishers with msgIds
 * and a retry schedule, reading back what a stream stored, and waiting for a
 * consumer to settle.
 */
import type { Scope } from "effect"
import { Cause, Context, Effect, Schedule, Stream } from "effect"
import type { Duration } from "effect"
import type { NatsError } from "../../src/index.ts"
import type { NatsServer } from "../../src/index.ts"
import { Consumer, JetStream, JetStreamManager, NatsClient } from "../../src/index.ts"

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** One line of the table (and of bench/results/chaos.json). */
export interface Row {
  readonly scenario: string
  readonly description: string
  readonly sent: number
  /** `undefined`: core NATS, nothing is acked or stored. */
  readonly acked: number | undefined
  readonly stored: number | undefined
  /** Extra stored copies of a message (the same id stored more than once). */
  readonly storedTwice: number | undefined
  /** Distinct messages delivered to the consumer side (`undefined`: no consumer in this scenario). */
  readonly delivered: number | undefined
  readonly lost: number
  readonly processedTwice: number | undefined
  /** ms from the fault to the first success after it (`undefined`: none, or no fault). */
  readonly resumeMs: number | undefined
  readonly seconds: number
  readonly extra: Record<string, unknown>
  readonly error?: string | undefined
}

/**
 * What happened to each message of a scenario, by id (the publisher's input
 * index, carried as the payload).
 */
export class Tally {
  /** Messages handed to the publisher (its input read so far). */
  sent = 0
  readonly acked = new Set<number>()
  duplicateAcks = 0
  /** Copies of each id the stream holds (read back once the run settles). */
  readonly stored = new Map<number, number>()
  /** Deliveries of each id to the consumer side. */
  readonly deliveries = new Map<number, number>()
  /** Ids the consumer side processed and acked. */
  readonly completed = new Set<number>()
  /** Deliveries of an id after it was acked by the consumer side. */
  processedTwice = 0
  /** Whether this scenario has a consumer side (delivered / processed columns). */
  consumes = false
  /** Whether messages go through JetStream (acked, stored); core NATS otherwise. */
  jetstream = true
  /** Core NATS: messages neither received nor reported dropped (the lost column). */
  unaccounted = 0
  faultAt = 0
  /** Successes count towards the resume time only once armed (the fault has fully happened). */
  armed = false
  resumedAt = 0
  readonly extra: Record<string, unknown> = {}
  /** Failures of the scenario's own steps (a timeout, a fault that could not be injected). */
  readonly errors: Array<string> = []

  ack(index: number, duplicate: boolean): void {
    this.acked.add(index)
    if (duplicate) this.duplicateAcks++
  }

  delivered(id: number): void {
    this.deliveries.set(id, (this.deliveries.get(id) ?? 0) + 1)
    if (this.completed.has(id)) this.processedTwice++
  }

  done(id: number): void {
    this.completed.add(id)
  }

  fault(): void {
    this.faultAt = Date.now()
  }

  arm(): void {
    this.armed = true
  }

  /** The first success once armed is the resume time. */
  success(): void {
    if (this.armed && this.resumedAt === 0) this.resumedAt = Date.now()
  }

  row(scenario: string, description: string, seconds: number): Row {
    let lost = 0
    for (const id of this.acked) if (!this.stored.has(id)) lost++
    let storedTwice = 0
    for (const copies of this.stored.values()) storedTwice += copies - 1
    if (this.consumes) { for (const id of this.stored.keys()) if (!this.completed.has(id)) lost++ }
    const js = this.jetstream
    return {
      scenario,
      description,
      sent: this.sent,
      acked: js ? this.acked.size : undefined,
      stored: js ? this.stored.size : undefined,
      storedTwice: js ? storedTwice : undefined,
      delivered: this.consumes ? this.deliveries.size : undefined,
      lost: js ? lost : this.unaccounted,
      processedTwice: this.consumes && js ? this.processedTwice : undefined,
      resumeMs: this.faultAt > 0 && this.resumedAt > 0 ? this.resumedAt - this.faultAt : undefined,
      seconds,
      extra: { duplicateAcks: this.duplicateAcks, ...this.extra },
      ...(this.errors.length === 0 ? {} : { error: this.errors.join("; ") })
    }
  }
}

/** A client on `servers` in that order (nats.js does not shuffle them), reconnecting every 100 ms. */
export const connect = (
  servers: ReadonlyArray<string>,
  options?: Partial<NatsClient.NatsClientOptions>
): Effect.Effect<NatsClient.NatsClientShape, NatsError.NatsError, Scope.Scope> =>
  NatsClient.make({
    servers,
    connectionOptions: { noRandomize: true },
    reconnectSchedule: Schedule.spaced("100 millis"),
    logEvents: false,
    ...options
  })

/** A client's JetStream services, and the context that provides them (for `Processor`, `Consumer`). */
export interface Services {
  readonly client: NatsClient.NatsClientShape
  readonly js: JetStream.JetStreamShape
  readonly jsm: JetStreamManager.JetStreamManagerShape
  readonly context: Context.Context<NatsClient.NatsClient | JetStream.JetStream | JetStreamManager.JetStreamManager>
}

export const services = Effect.fnUntraced(function*(client: NatsClient.NatsClientShape) {
  const js = yield* JetStream.make().pipe(Effect.provideService(NatsClient.NatsClient, client))
  const jsm = yield* JetStreamManager.make().pipe(Effect.provideService(NatsClient.NatsClient, client))
  const context = Context.make(NatsClient.NatsClient, client).pipe(
    Context.add(JetStream.JetStream, js),
    Context.add(JetStreamManager.JetStreamManager, jsm)
  )
  return { client, js, jsm, context } satisfies Services
})

/** The publishers' retry: every 200 ms, for up to 30 s. */
export const retry = Schedule.spaced("200 millis").pipe(Schedule.upTo({ times: 150 }))

/** The id a payload carries. */
export const idOf = (payload: Uint8Array): number => Number(decoder.decode(payload))

/**
 * `count` messages on `subject.<i % 4>`, payload and msgId from the index,
 * `perTick` of them every `tickMs` (0: as fast as the publisher takes them);
 * each message read counts as sent.
 */
export const messages = (
  tally: Tally,
  name: string,
  count: number,
  pace?: { readonly perTick: number; readonly tickMs: number }
) =>
  Stream.range(0, count - 1).pipe(
    Stream.tap((i) => {
      tally.sent = i + 1
      return pace !== undefined && i > 0 && i % pace.perTick === 0 ? Effect.sleep(pace.tickMs) : Effect.void
    }),
    Stream.map((i) => ({ subject: `${name}.${i % 4}`, payload: encoder.encode(`${i}`), msgId: `${name}-${i}` }))
  )

/**
 * Publishes `input` with `publishAll` (msgIds, the retry schedule), tallying
 * every ack; `onAck` runs after each. A failure that outlived the retry is
 * recorded (with the acks it lists) instead of failing the scenario.
 */
export const publish = (
  svc: Services,
  tally: Tally,
  input: Stream.Stream<JetStream.OutgoingMessage>,
  onAck: (acked: number) => Effect.Effect<void, never, Scope.Scope> = () => Effect.void,
  options?: { readonly window?: number; readonly timeout?: Duration.Input }
): Effect.Effect<void, NatsError.NatsError, Scope.Scope> =>
  svc.js.publishAll(input, { window: options?.window ?? 64, timeout: options?.timeout ?? "2 seconds", retry }).pipe(
    Stream.runForEach((ack) =>
      Effect.suspend(() => {
        tally.ack(ack.index, ack.duplicate)
        return onAck(tally.acked.size)
      })
    ),
    Effect.catchTag("PublishAllError", (error) =>
      Effect.sync(() => {
        for (const later of error.ackedAfter) tally.ack(later.index, later.duplicate)
        tally.extra.publishError = `${error.error.reason._tag} at ${error.index}`
      }))
  )

/**
 * Reads back every message the stream holds (an ordered consumer) into
 * `tally.stored`. Retried: right after a node of a cluster was killed, the
 * server may not create the ordered consumer for a while (raw nats.js too:
 * its creation request times out until the cluster has settled).
 */
export const readStored = Effect.fnUntraced(function*(svc: Services, stream: string, tally: Tally) {
  const info = yield* svc.jsm.streamInfo(stream).pipe(
    Effect.retry({ schedule: Schedule.spaced("200 millis"), times: 50 })
  )
  tally.extra.streamMessages = info.state.messages
  if (info.state.messages === 0) return
  let attempts = 0
  yield* Effect.scoped(Effect.gen(function*() {
    attempts++
    tally.stored.clear()
    const replay = yield* Consumer.make({ stream, ordered: {} }).pipe(Effect.provide(svc.context))
    yield* replay.consume().pipe(
      Stream.take(info.state.messages),
      Stream.runForEach((m) =>
        Effect.sync(() => {
          const id = idOf(m.value)
          tally.stored.set(id, (tally.stored.get(id) ?? 0) + 1)
        })
      ),
      Effect.timeout("20 seconds")
    )
  })).pipe(Effect.retry({ schedule: Schedule.spaced("500 millis"), times: 5 }))
  if (attempts > 1) tally.extra.readBackAttempts = attempts
})

/**
 * Until the durable consumer has nothing pending and nothing unacked on the
 * server (nothing more will be delivered), for at most `seconds`.
 */
export const settled = (svc: Services, stream: string, durable: string, seconds = 30) =>
  svc.jsm.consumerInfo(stream, durable).pipe(
    Effect.flatMap((info) =>
      info.numPending === 0 && info.numAckPending === 0 ? Effect.succeed(info) : Effect.fail("not yet" as const)
    ),
    Effect.retry({ schedule: Schedule.spaced("200 millis"), times: seconds * 5 }),
    Effect.orElseSucceed(() => undefined)
  )

/** Until `cond()` holds, checked every 20 ms, for at most `ms` (then it returns false). */
export const until = (cond: () => boolean, ms: number): Effect.Effect<boolean> =>
  Effect.suspend(() => cond() ? Effect.succeed(true) : Effect.fail("not yet" as const)).pipe(
    Effect.retry({ schedule: Schedule.spaced("20 millis"), times: Math.ceil(ms / 20) }),
    Effect.orElseSucceed(() => false)
  )

/** Awaits the first connection event with this tag from now on (forked in the current scope). */
export const nextEvent = (client: NatsClient.NatsClientShape, tag: string) =>
  Effect.gen(function*() {
    const events = yield* client.eventsScoped
    return yield* events.pipe(Stream.filter((e) => e._tag === tag), Stream.runHead, Effect.forkScoped)
  })

/**
 * Runs one phase of a scenario within `seconds`; a failure or a timeout is
 * recorded in `tally.errors` (the scenario goes on to count what happened).
 */
export const phase = <A, E, R>(tally: Tally, label: string, effect: Effect.Effect<A, E, R>, seconds: number) =>
  effect.pipe(
    Effect.timeout(seconds * 1000),
    Effect.catchCause((cause) =>
      Effect.sync(() => {
        tally.errors.push(`${label}: ${Cause.pretty(cause).split("\n")[0]}`)
      })
    ),
    Effect.asVoid
  )

/** The node index whose name is `name` (a leader named by a stream or consumer info), or -1. */
export const nodeIndex = (server: NatsServer.NatsServerShape, name: string | undefined) =>
  server.nodes.findIndex((n) => n.name === name)
