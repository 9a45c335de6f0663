/**
 * Reading a subject of a stream in order, through an ordered consumer of
 * our own (a few messages pulled at a time as the Stream is pulled), read
 * on after the last message delivered when a read fails: what Key-Value
 * watches, histories and key listings, and Object Store reads, are made of.
 *
 * The consumer is what nats.js' ordered consumer makes (ephemeral, no
 * acks, in memory, one replica), pulled through the consumer session of
 * `Consumer` (bounded, its stall watchdog). What nats.js' ordered consumer
 * does on top is done here, cheaper: a delivery out of order (one missed),
 * a consumer gone or a pull gone silent end the read, which is opened
 * again, with a fresh consumer, after the last message delivered; the
 * reply subject is read in one pass (`ackReply`) where nats.js `parseInt`s
 * every field of every message (a tenth of a watch's time).
 *
 * A read also fails (retryably) when the connection drops: the deliveries
 * in flight are lost with it and the server counts them as delivered. (nats.js'
 * own ordered consumer does not notice: its KV `history` and `keys` then
 * end *normally*, with part of the entries (nats.js issue #426), and its
 * Object Store `get` hangs.)
 *
 * @internal
 */
import type { JsMsg } from "@nats-io/jetstream"
import { Deferred, Duration, Effect, Schedule, Stream } from "effect"
import * as ConsumerConfig from "../schemas/ConsumerConfig.ts"
import * as NatsError from "../schemas/NatsError.ts"
import type * as JetStreamManager from "../services/JetStreamManager.ts"
import type { NatsClient } from "../services/NatsClient.ts"
import * as AckReply from "./ackReply.ts"
import { consumerFromUnknown } from "./consumerErrors.ts"
import * as Session from "./consumerSession.ts"
import * as Decode from "./decode.ts"
import { natsError, unknown } from "./errors.ts"

/** Where to read. */
export interface Source {
  readonly stream: string
  readonly manager: JetStreamManager.JetStreamManagerShape
  readonly nats: NatsClient["Service"]
  /** Names the reads in errors. */
  readonly operation: string
}

/** A message of a read, its reply subject read once (`ackReply`). */
export class Delivery {
  readonly msg: JsMsg
  readonly info: AckReply.Info
  constructor(msg: JsMsg, info: AckReply.Info) {
    this.msg = msg
    this.info = info
  }
  get subject(): string {
    return this.msg.subject
  }
  get value(): Uint8Array {
    return this.msg.data
  }
  get streamSequence(): number {
    return this.info.streamSequence
  }
  /** Messages left for the read after this one, when it was delivered. */
  get pending(): number {
    return this.info.pending
  }
  /** When it was stored, in milliseconds since the epoch. */
  get storedMillis(): number {
    return Math.floor(this.info.storedNanos / 1e6)
  }
}

/** Options of a read. */
export interface ReadOptions {
  readonly headersOnly?: boolean | undefined
  /** Messages pulled at a time. Default 100. */
  readonly maxMessages?: number | undefined
  /** Messages buffered before the reader takes them. Default 256. */
  readonly bufferSize?: number | undefined
  /** How many times, and how soon, a failed read is opened again. */
  readonly retry: Schedule.Schedule<unknown, NatsError.NatsError>
}

/** A read's own failures that mean "open it again after the last message" (told apart by identity). */
const rereads = new WeakSet<NatsError.NatsError>()

/** The consumer's heartbeat while a pull waits; three of them silent (with room in the Stream) is a stall. */
const heartbeatMillis = 1000

/**
 * Makes the read's consumer (what nats.js' ordered consumer makes:
 * ephemeral, no acks, in memory, one replica; gone after 5 minutes
 * without a pull, should the read not delete it).
 */
const makeConsumer = (
  source: Source,
  subject: string,
  deliver: ConsumerConfig.DeliverPolicy,
  options: ReadOptions
) =>
  Effect.tryPromise({
    try: async () => {
      const config = ConsumerConfig.toNats({
        ackPolicy: "none",
        deliverPolicy: deliver,
        filterSubject: subject,
        headersOnly: options.headersOnly === true,
        memoryStorage: true,
        replicas: 1,
        inactiveThreshold: Duration.minutes(5)
      })
      const info = await source.manager.manager.consumers.add(source.stream, config)
      return { consumer: source.manager.client.consumers.getConsumerFromInfo(info), name: info.name }
    },
    catch: (cause) =>
      consumerFromUnknown(cause, { operation: source.operation, stream: source.stream, consumer: "(ordered)" })
  })

/**
 * One ordered read from `deliver` on: fails when the connection drops, a
 * delivery is missed, its consumer is gone or its pull stalls.
 */
const once = (
  source: Source,
  subject: string,
  deliver: ConsumerConfig.DeliverPolicy,
  options: ReadOptions
): Stream.Stream<Delivery, NatsError.NatsError> =>
  Stream.unwrap(Effect.gen(function*() {
    const dropped = yield* Deferred.make<never, NatsError.NatsError>()
    yield* Effect.acquireRelease(
      Effect.sync(() =>
        source.nats.core.onDisconnected(() =>
          Deferred.doneUnsafe(
            dropped,
            Effect.fail(natsError(
              new NatsError.Disconnected({
                operation: source.operation,
                message:
                  `the connection dropped during a read of ${subject}: reading on after the last message received`
              })
            ))
          )
        )
      ),
      (remove) => Effect.sync(remove)
    )
    const { consumer, name } = yield* Effect.acquireRelease(
      makeConsumer(source, subject, deliver, options),
      ({ consumer }) => Effect.sync(() => void consumer.delete().catch(() => undefined))
    )
    const ctx = { operation: source.operation, stream: source.stream, consumer: name }
    const messages = Session.stream({
      operation: source.operation,
      context: () => ctx,
      metricsConsumer: "ordered",
      open: () =>
        consumer.consume({
          max_messages: options.maxMessages ?? 100,
          expires: 30_000,
          idle_heartbeat: heartbeatMillis,
          abort_on_missing_resource: true
        }),
      bufferSize: options.bufferSize ?? 256,
      continuous: true,
      onStatus: () => Effect.void,
      sessions: new Session.Sessions(),
      connectionClosed: () => source.nats.connection.isClosed(),
      heartbeatMillis
    })
    // deliveries in order: the consumer's sequence goes up by one each time (else one was missed)
    let expected = 1
    const inOrder = (msg: JsMsg, out: Array<Delivery>): NatsError.NatsError | undefined => {
      // nats.js' JsMsg has its reply subject, untyped
      const info = AckReply.parse((msg as unknown as { readonly reply?: string }).reply)
      if (info === undefined) {
        return unknown(source.operation, `${subject}: a delivery without a JetStream reply subject`)
      }
      const delivered = info.consumerSequence
      if (delivered === expected) {
        expected++
        out.push(new Delivery(msg, info))
        return undefined
      }
      const error = unknown(
        source.operation,
        `${subject}: delivery ${expected} of consumer ${name} was missed (got ${delivered}): reading on after the last message received`
      )
      rereads.add(error)
      return error
    }
    const ordered = Decode.decodeStream<
      JsMsg,
      Delivery,
      NatsError.NatsError,
      never,
      never,
      NatsError.NatsError
    >(messages, { decode: inOrder, policy: "fail" })
    return ordered.pipe(
      Stream.catchIf(
        (error) => error.reason._tag === "ConsumerNotFound" && error.reason.consumer === name,
        (error) => {
          rereads.add(error)
          return Stream.fail(error)
        }
      ),
      Stream.interruptWhen(Deferred.await(dropped))
    )
  }))

/** Whether a failed read is opened again: a retryable failure, or one of its own (a missed delivery, its consumer gone). */
const readsOn = (error: unknown): boolean => NatsError.isNatsError(error) && (error.isRetryable || rereads.has(error))

/**
 * The messages of `subject`, read on after the last one delivered when a
 * read fails retryably (a dropped connection, a restarting server), as long
 * as `retry` allows: none missed, none repeated. `start` says where a read
 * begins given the stream sequence of the last message delivered (0 at first).
 */
export const read = (
  source: Source,
  subject: string,
  start: (last: number) => ConsumerConfig.DeliverPolicy,
  options: ReadOptions
): Stream.Stream<Delivery, NatsError.NatsError> =>
  Stream.suspend(() => {
    let last = 0
    const open = Stream.suspend(() =>
      once(source, subject, start(last), options).pipe(
        Stream.filter((msg) => {
          if (msg.streamSequence <= last) return false
          last = msg.streamSequence
          return true
        })
      )
    )
    return open.pipe(
      Stream.retry(options.retry.pipe(Schedule.while(({ input }) => readsOn(input))))
    )
  })

/** Reads opened again for good: every 100 ms at first, at most every 2 s. */
export const forever: Schedule.Schedule<unknown, NatsError.NatsError> = Schedule.exponential("100 millis").pipe(
  Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, Duration.seconds(2))))
)

/** Reads of what is stored: opened again for about 30 s, then the read fails. */
export const bounded: Schedule.Schedule<unknown, NatsError.NatsError> = Schedule.max([forever, Schedule.recurs(20)])
