/**
 * Reading a subject of a stream in order through our ordered consumer (a
 * few messages pulled at a time as the Stream is pulled; nats.js recreates
 * the consumer when it loses its place), read on after the last message
 * delivered when a read fails: what Key-Value watches, histories and key
 * listings, and Object Store reads, are made of.
 *
 * A read fails (retryably) when the connection drops: the deliveries in
 * flight are lost with it, and nats.js' ordered consumer does not notice
 * (the server counts them as delivered, and nats.js takes the heartbeats
 * that follow as "nothing more"): nats.js' own KV `history` and `keys` then
 * end *normally*, with part of the entries (nats.js issue #426), and its
 * Object Store `get` hangs.
 *
 * @internal
 */
import { Deferred, Duration, Effect, Schedule, Stream } from "effect"
import type * as ConsumerConfig from "../schemas/ConsumerConfig.ts"
import * as NatsError from "../schemas/NatsError.ts"
import * as Consumer from "../services/Consumer.ts"
import * as JetStreamManager from "../services/JetStreamManager.ts"
import type { JsEnvelope } from "../services/JsEnvelope.ts"
import { NatsClient } from "../services/NatsClient.ts"
import { natsError } from "./errors.ts"

/** Where to read. */
export interface Source {
  readonly stream: string
  readonly manager: JetStreamManager.JetStreamManagerShape
  readonly nats: NatsClient["Service"]
  /** Names the reads in errors. */
  readonly operation: string
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

/** One ordered read from `deliver` on, failing when the connection drops. */
const once = (
  source: Source,
  subject: string,
  deliver: ConsumerConfig.DeliverPolicy,
  options: ReadOptions
): Stream.Stream<JsEnvelope<Uint8Array>, NatsError.NatsError> =>
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
    const consumer = yield* Consumer.make({
      stream: source.stream,
      ordered: { filterSubject: subject, deliver, headersOnly: options.headersOnly === true }
    }).pipe(Effect.provideService(JetStreamManager.JetStreamManager, source.manager))
    return consumer.consume({
      ...(options.maxMessages === undefined ? {} : { maxMessages: options.maxMessages }),
      ...(options.bufferSize === undefined ? {} : { bufferSize: options.bufferSize })
    }).pipe(Stream.interruptWhen(Deferred.await(dropped)))
  })).pipe(Stream.provideService(NatsClient, source.nats))

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
): Stream.Stream<JsEnvelope<Uint8Array>, NatsError.NatsError> =>
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
      Stream.retry(options.retry.pipe(Schedule.while(({ input }) => NatsError.isNatsError(input) && input.isRetryable)))
    )
  })

/** Reads opened again for good: every 100 ms at first, at most every 2 s. */
export const forever: Schedule.Schedule<unknown, NatsError.NatsError> = Schedule.exponential("100 millis").pipe(
  Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, Duration.seconds(2))))
)

/** Reads of what is stored: opened again for about 30 s, then the read fails. */
export const bounded: Schedule.Schedule<unknown, NatsError.NatsError> = Schedule.max([forever, Schedule.recurs(20)])
