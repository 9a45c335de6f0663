/**
 * JetStream pull consumers as Effect values: bind to a durable consumer,
 * create or update one from a typed `ConsumerConfig`, or replay a stream with
 * an ordered consumer; `consume` as a bounded `Stream` of envelopes, `fetch`
 * batches, `next`, decoded payloads, status events, and recovery by a
 * `Schedule`.
 *
 * **Backpressure.** For a pull consumer with explicit acks and a
 * `max_ack_pending` (the server's default is 1,000), `consume` takes nats.js'
 * callback delivery (about twice as fast as its async iterator): the server
 * never has more than `max_ack_pending` messages delivered and not acked, so
 * that is the bound on what a stalled Stream holds. Otherwise (acks `none` or
 * `all`, no limit, push consumers) it reads nats.js' *iterator*: nats.js
 * queues its follow-up pulls behind the messages it already received, so
 * memory is bounded by its prefetch (`maxMessages` / `maxBytes`) plus the
 * Stream's own buffer (`bufferSize`); when that buffer is full the iterator
 * is not advanced and nothing more is pulled. No message is ever dropped.
 * Messages still buffered when the Stream ends were never handed out and are
 * never acked: the server redelivers them after the consumer's `ackWait`.
 *
 * **Decode failures** (`onDecodeError`, same policies as `TypedSubject`):
 * `"fail"` fails the Stream with the `DecodeError` and leaves the message
 * un-acked (redelivered after `ackWait`, so a restarted Stream meets it
 * again); `"logAndSkip"` logs a warning and **terminates** the message
 * (`term` with a reason: the same bytes would fail again, so redelivering
 * would only burn deliveries); a handler receives the error and the raw
 * `JsMsg` and owns its fate (ack, term, nak, publish to a dead-letter
 * subject...) — a message the handler leaves alone is redelivered after
 * `ackWait`.
 *
 * **Recovery.** `consume` survives server restarts and reconnects by itself
 * (nats.js re-pulls). When the consumer or its stream disappears, the Stream
 * retries by the `recovery` schedule: a handle that owns its `config`
 * recreates the consumer; a handle bound by `durable` name looks it up again
 * (someone else must recreate it). When the schedule gives up, the Stream
 * fails with `ConsumerNotFound` / `StreamNotFound`. Ordered consumers are
 * recreated by nats.js itself. A recreated consumer starts where its config
 * says (`deliverPolicy`, all messages by default): the server has forgotten
 * what the deleted one had acked, so messages may be delivered again —
 * handlers should be idempotent (or the config should start later).
 *
 * **Shutdown.** Ending a Stream (or closing the handle's scope) stops pulling
 * at once (the pull subscription is removed), before the connection drains.
 *
 * **Push consumers** work against nats-server 2.9 (checked with nats.js
 * 3.4): `config` with `push: {...}` creates a durable push consumer (deliver
 * subject, flow control, idle heartbeats) and `durable` with `push: true`
 * binds to one; `consume` reads it through the same bounded bridge (nats.js
 * answers flow control only once the Stream has taken the messages before
 * it, so the server pauses too). `fetch` / `next` need a pull consumer.
 * A deleted push consumer is noticed by its missed heartbeats.
 *
 * @since 0.1.0
 */
import type {
  ConsumeOptions as NatsConsumeOptions,
  Consumer as JsConsumer,
  ConsumerInfo,
  ConsumerMessages,
  ConsumerNotification,
  FetchOptions as NatsFetchOptions,
  JetStreamManager,
  JsMsg,
  OrderedConsumerOptions,
  PushConsumer
} from "@nats-io/jetstream"
import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import { createInbox } from "@nats-io/nats-core"
import type { Option, Scope } from "effect"
import { Cause, Context, Duration, Effect, Layer, PubSub, Queue, Result, Schedule, Stream } from "effect"
import type * as Arr from "effect/Array"
import type * as Pull from "effect/Pull"
import { consumerFromUnknown, isMissingResource } from "../internal/consumerErrors.ts"
import type { ConsumerContext } from "../internal/consumerErrors.ts"
import { millis } from "../internal/duration.ts"
import { jsFromUnknown } from "../internal/jsErrors.ts"
import * as Codec from "../schemas/Codec.ts"
import * as ConsumerConfig from "../schemas/ConsumerConfig.ts"
import * as E from "../schemas/NatsError.ts"
import * as JsEnvelope from "./JsEnvelope.ts"
import { NatsClient } from "./NatsClient.ts"

/**
 * Common options of every consumer handle.
 *
 * @category models
 * @since 0.1.0
 */
export interface CommonOptions {
  /** The stream the consumer reads. */
  readonly stream: string
  /**
   * How `consume` (and `fetch`) retry when the consumer or its stream is
   * missing. The input is the `NatsError` (`ConsumerNotFound` or
   * `StreamNotFound`). Default: `defaultRecovery`.
   */
  readonly recovery?: Schedule.Schedule<unknown, E.NatsError> | undefined
}

/**
 * Bind to an existing durable consumer by name. Building the handle fails
 * with `ConsumerNotFound` / `StreamNotFound` when it does not exist.
 *
 * @category models
 * @since 0.1.0
 */
export interface DurableOptions extends CommonOptions {
  readonly durable: string
  /** The durable is a push consumer (it has a deliver subject). Default `false`. */
  readonly push?: boolean | undefined
}

/**
 * Create the consumer (or update it when a durable of that name exists) on
 * build. A `durable` name in the config makes it durable; without one the
 * server names it and removes it after `inactiveThreshold` without activity
 * (it is recreated when needed).
 *
 * @category models
 * @since 0.1.0
 */
export interface ConfigOptions extends CommonOptions {
  readonly config: ConsumerConfig.ConsumerConfig
  /** Make it a push consumer: the server delivers to a subject instead of answering pulls. */
  readonly push?: PushOptions | undefined
}

/**
 * An ordered consumer: replays the stream (or the subjects matching
 * `filterSubject`) in order from `deliver` (default: all), without acks;
 * nats.js recreates it when it loses its place. Each `consume` call replays
 * from the start again; `fetch` / `next` continue where the previous call
 * stopped.
 *
 * @category models
 * @since 0.1.0
 */
export interface OrderedOptions {
  readonly stream: string
  readonly ordered: {
    readonly filterSubject?: string | undefined
    readonly deliver?: ConsumerConfig.DeliverPolicy | undefined
    readonly replayPolicy?: "instant" | "original" | undefined
    readonly headersOnly?: boolean | undefined
  }
}

/**
 * Push consumer settings. Flow control is on (the server pauses until the
 * client answers its flow control messages, which nats.js does only once
 * the Stream has taken the messages before them), with idle heartbeats.
 * Bound memory with the consumer's `maxAckPending` too.
 *
 * @category models
 * @since 0.1.0
 */
export interface PushOptions {
  /** Where the server delivers. Default: a fresh inbox. */
  readonly deliverSubject?: string | undefined
  /** Queue group sharing the deliveries. */
  readonly deliverGroup?: string | undefined
  /** Server heartbeat while idle. Default 5 seconds. */
  readonly idleHeartbeat?: Duration.Input | undefined
}

/**
 * How to bind a consumer handle.
 *
 * @category models
 * @since 0.1.0
 */
export type ConsumerOptions = DurableOptions | ConfigOptions | OrderedOptions

/**
 * What a `consume` / `fetch` / `next` does with a payload that does not
 * decode (same semantics as `TypedSubject.OnDecodeError`, on JetStream
 * messages; see the module documentation for the fate of the message).
 *
 * @category models
 * @since 0.1.0
 */
export type OnDecodeError<R = never> =
  | "fail"
  | "logAndSkip"
  | ((error: Codec.DecodeError, msg: JsMsg) => Effect.Effect<void, never, R>)

/**
 * A payload codec, or a Schema (decoded from JSON).
 *
 * @category models
 * @since 0.1.0
 */
export type CodecInput<A> = Codec.Input<A>

/**
 * Decoding options.
 *
 * @category models
 * @since 0.1.0
 */
export interface DecodeOptions<A, R = never> {
  readonly codec: CodecInput<A>
  /** Default `"logAndSkip"`. */
  readonly onDecodeError?: OnDecodeError<R> | undefined
}

/**
 * Options of `consume`.
 *
 * @category models
 * @since 0.1.0
 */
export interface ConsumeOptions {
  /** Messages nats.js prefetches (one pull). Default 100. Exclusive with `maxBytes`. */
  readonly maxMessages?: number | undefined
  /** Bytes nats.js prefetches (one pull) instead of a message count. */
  readonly maxBytes?: number | undefined
  /** Pull again when fewer than this many messages are outstanding. Default 75% of `maxMessages`. */
  readonly thresholdMessages?: number | undefined
  /** Pull again when fewer than this many bytes are outstanding. Default 75% of `maxBytes`. */
  readonly thresholdBytes?: number | undefined
  /** How long one pull request lives on the server. Default 30 s, at least 1 s. */
  readonly expires?: Duration.Input | undefined
  /** Server heartbeat interval while idle. Default half of `expires`. */
  readonly idleHeartbeat?: Duration.Input | undefined
  /** The Stream's own buffer (messages handed out by nats.js, not yet pulled by the Stream). Default 256. */
  readonly bufferSize?: number | undefined
  /** Overrides the handle's recovery schedule. */
  readonly recovery?: Schedule.Schedule<unknown, E.NatsError> | undefined
  /**
   * Called synchronously with each message as it enters the Stream's buffer
   * (before the Stream hands it out): to keep buffered messages alive
   * (`working`) or to count them. It must not throw.
   */
  readonly onReceive?: ((msg: JsMsg) => void) | undefined
}

/**
 * Options of `fetch`.
 *
 * @category models
 * @since 0.1.0
 */
export interface FetchOptions {
  /** At most this many messages. */
  readonly batch: number
  /** How long to wait for the batch to fill. Default 30 s, at least 1 s (a nats.js limit). */
  readonly maxWait?: Duration.Input | undefined
  /** At most this many bytes. */
  readonly maxBytes?: number | undefined
}

/**
 * Options of `next`.
 *
 * @category models
 * @since 0.1.0
 */
export interface NextOptions {
  /** How long to wait for a message. Default 30 s, at least 1 s (a nats.js limit). */
  readonly maxWait?: Duration.Input | undefined
}

/**
 * Consumer status events: what nats.js reports about the pulls of a
 * `consume` / `fetch` (missed heartbeats, missing consumer or stream,
 * discarded pulls after a restart, ordered consumer resets...), and the
 * handle's own recovery steps (`Recovering`, `Recovered`).
 *
 * @category models
 * @since 0.1.0
 */
export type ConsumerStatus =
  | { readonly _tag: "HeartbeatsMissed"; readonly count: number }
  | { readonly _tag: "ConsumerNotFound"; readonly stream: string; readonly consumer: string; readonly count: number }
  | { readonly _tag: "StreamNotFound"; readonly stream: string }
  | { readonly _tag: "ConsumerDeleted"; readonly code: number; readonly description: string }
  | { readonly _tag: "OrderedConsumerRecreated"; readonly consumer: string }
  | { readonly _tag: "ExceededLimits"; readonly code: number; readonly description: string }
  | { readonly _tag: "Discard"; readonly messagesLeft: number; readonly bytesLeft: number }
  | { readonly _tag: "Reset"; readonly consumer: string }
  | { readonly _tag: "NoResponders"; readonly code: number }
  | { readonly _tag: "Heartbeat"; readonly lastConsumerSequence: number; readonly lastStreamSequence: number }
  | { readonly _tag: "FlowControl" }
  | { readonly _tag: "Debug"; readonly code: number; readonly description: string }
  | {
    readonly _tag: "Recovering"
    readonly attempt: number
    readonly reason: "ConsumerNotFound" | "StreamNotFound"
    readonly message: string
  }
  | { readonly _tag: "Recovered"; readonly consumer: string; readonly recreated: boolean }

/**
 * A consumer handle.
 *
 * @category models
 * @since 0.1.0
 */
export interface ConsumerShape {
  readonly stream: string
  /** How the handle is bound. */
  readonly kind: "durable" | "config" | "ordered"
  /** The consumer's current name (it changes when an ephemeral or ordered consumer is recreated). */
  readonly name: Effect.Effect<string>
  /** The current raw nats.js consumer (escape hatch). */
  readonly raw: Effect.Effect<JsConsumer | PushConsumer>
  /** Whether this is a push consumer (`consume` only; `fetch` and `next` fail with `InvalidArgument`). */
  readonly push: boolean
  /** The consumer's info from the server. */
  readonly info: Effect.Effect<ConsumerInfo, E.NatsError>
  /**
   * The continuous pull flow as a Stream of envelopes (raw bytes as `value`
   * unless a `codec` is given). Runs until interrupted; recovers as the
   * module documentation says.
   */
  readonly consume: {
    <A, R = never>(
      options: ConsumeOptions & DecodeOptions<A, R>
    ): Stream.Stream<JsEnvelope.JsEnvelope<A>, E.NatsError | Codec.DecodeError, R>
    (options?: ConsumeOptions): Stream.Stream<JsEnvelope.JsEnvelope<Uint8Array>, E.NatsError>
  }
  /** One pull of at most `batch` messages; ends when the batch is complete or `maxWait` has passed. */
  readonly fetch: {
    <A, R = never>(
      options: FetchOptions & DecodeOptions<A, R>
    ): Stream.Stream<JsEnvelope.JsEnvelope<A>, E.NatsError | Codec.DecodeError, R>
    (options: FetchOptions): Stream.Stream<JsEnvelope.JsEnvelope<Uint8Array>, E.NatsError>
  }
  /**
   * The next message, or `None` when none came within `maxWait` (or it did
   * not decode and the policy skipped it).
   */
  readonly next: {
    <A, R = never>(
      options: NextOptions & DecodeOptions<A, R>
    ): Effect.Effect<Option.Option<JsEnvelope.JsEnvelope<A>>, E.NatsError | Codec.DecodeError, R>
    (options?: NextOptions): Effect.Effect<Option.Option<JsEnvelope.JsEnvelope<Uint8Array>>, E.NatsError>
  }
  /** Status events of this handle's pulls, from now on. */
  readonly status: Stream.Stream<ConsumerStatus>
}

/**
 * The consumer of a single-consumer application (built by `layer`). Users
 * with several consumers build their own tags from `make`.
 *
 * @category services
 * @since 0.1.0
 */
export class Consumer extends Context.Service<Consumer, ConsumerShape>()("effect-nats/Consumer") {}

/**
 * The default recovery schedule: exponential from 200 ms, capped at 5 s, for
 * up to 20 attempts (about a minute and a half).
 *
 * @category defaults
 * @since 0.1.0
 */
export const defaultRecovery: Schedule.Schedule<unknown, unknown> = Schedule.exponential("200 millis").pipe(
  Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, Duration.seconds(5)))),
  Schedule.upTo({ times: 20 })
)

const toStatus = (n: ConsumerNotification): ConsumerStatus | undefined => {
  switch (n.type) {
    case "heartbeats_missed":
      return { _tag: "HeartbeatsMissed", count: n.count }
    case "consumer_not_found":
      return { _tag: "ConsumerNotFound", stream: n.stream, consumer: n.name, count: n.count }
    case "stream_not_found":
      return { _tag: "StreamNotFound", stream: n.name }
    case "consumer_deleted":
      return { _tag: "ConsumerDeleted", code: n.code, description: n.description }
    case "ordered_consumer_recreated":
      return { _tag: "OrderedConsumerRecreated", consumer: n.name }
    case "exceeded_limits":
      return { _tag: "ExceededLimits", code: n.code, description: n.description }
    case "discard":
      return { _tag: "Discard", messagesLeft: n.messagesLeft, bytesLeft: n.bytesLeft }
    case "reset":
      return { _tag: "Reset", consumer: n.name }
    case "no_responders":
      return { _tag: "NoResponders", code: n.code }
    case "heartbeat":
      return {
        _tag: "Heartbeat",
        lastConsumerSequence: n.lastConsumerSequence,
        lastStreamSequence: n.lastStreamSequence
      }
    case "flow_control":
      return { _tag: "FlowControl" }
    case "debug":
      return { _tag: "Debug", code: n.code, description: n.description }
    case "next":
    case "consumer_pinned":
    case "consumer_unpinned":
      return undefined
  }
}

const deliverToOrdered = (policy: ConsumerConfig.DeliverPolicy): Partial<OrderedConsumerOptions> => {
  const wire = ConsumerConfig.toNats({ deliverPolicy: policy })
  return {
    ...(wire.deliver_policy === undefined ? {} : { deliver_policy: wire.deliver_policy }),
    ...(wire.opt_start_seq === undefined ? {} : { opt_start_seq: wire.opt_start_seq }),
    ...(wire.opt_start_time === undefined ? {} : { opt_start_time: wire.opt_start_time })
  }
}

const orderedOptions = (options: OrderedOptions["ordered"]): Partial<OrderedConsumerOptions> => ({
  // a single string: 2.9 servers refuse `filter_subjects` arrays
  ...(options.filterSubject === undefined ? {} : { filter_subjects: options.filterSubject }),
  ...(options.deliver === undefined ? {} : deliverToOrdered(options.deliver)),
  ...(options.replayPolicy === undefined ? {} : { replay_policy: options.replayPolicy }),
  ...(options.headersOnly === undefined ? {} : { headers_only: options.headersOnly })
})

const logAndSkip = (error: Codec.DecodeError, msg: JsMsg, termReasons: boolean): Effect.Effect<void> =>
  Effect.suspend(() => {
    let termed = true
    try {
      if (termReasons) msg.term(`effect-nats: payload did not decode: ${error.message}`.slice(0, 256))
      else msg.term()
    } catch {
      termed = false
    }
    return Effect.logWarning(
      `nats: terminated JetStream message ${msg.seq} on ${msg.subject} that did not decode${
        termed ? "" : " (term failed: it will be redelivered)"
      }: ${error.message}`
    ).pipe(Effect.annotateLogs({ subject: msg.subject, stream: msg.info.stream, sequence: msg.seq }))
  })

/**
 * Turns a Stream of raw JetStream messages into envelopes, decoding payloads
 * with the codec (when given) and applying the decode failure policy, a
 * chunk at a time.
 *
 * @category decoding
 * @since 0.1.0
 */
export const decodeMessages = <A, E, R, R2 = never>(
  messages: Stream.Stream<JsMsg, E, R>,
  codecInput: CodecInput<A>,
  onDecodeError: OnDecodeError<R2> = "logAndSkip",
  termReasons = false
): Stream.Stream<JsEnvelope.JsEnvelope<A>, E | Codec.DecodeError, R | R2> => {
  const codec = Codec.fromInput(codecInput)
  const onFailure = (error: Codec.DecodeError, msg: JsMsg): Effect.Effect<void, Codec.DecodeError, R2> =>
    onDecodeError === "fail"
      ? Effect.fail(error)
      : onDecodeError === "logAndSkip"
      ? logAndSkip(error, msg, termReasons)
      : onDecodeError(error, msg)
  return Stream.transformPull(messages, (pull) => {
    let pending: Codec.DecodeError | undefined
    const next: Pull.Pull<Arr.NonEmptyReadonlyArray<JsEnvelope.JsEnvelope<A>>, E | Codec.DecodeError, void, R2> = Effect
      .gen(function*() {
        if (pending !== undefined) return yield* Effect.fail(pending)
        while (true) {
          const chunk = yield* pull
          const out: Array<JsEnvelope.JsEnvelope<A>> = []
          for (const msg of chunk) {
            const decoded = codec.decode(msg.data)
            if (Result.isSuccess(decoded)) {
              out.push(JsEnvelope.make(decoded.success, msg, termReasons))
              continue
            }
            const error = Codec.withSubject(decoded.failure, msg.subject)
            if (onDecodeError === "fail" && out.length > 0) {
              pending = error
              return out as unknown as Arr.NonEmptyReadonlyArray<JsEnvelope.JsEnvelope<A>>
            }
            yield* onFailure(error, msg)
          }
          if (out.length > 0) return out as unknown as Arr.NonEmptyReadonlyArray<JsEnvelope.JsEnvelope<A>>
        }
      })
    return Effect.succeed(next)
  })
}

const rawEnvelopes = <E, R>(
  messages: Stream.Stream<JsMsg, E, R>,
  termReasons: boolean
): Stream.Stream<JsEnvelope.JsEnvelope<Uint8Array>, E, R> =>
  Stream.map(messages, (msg) => JsEnvelope.make(msg.data, msg, termReasons))

interface Session {
  readonly messages: ConsumerMessages
  /** Absent when nats.js delivers through a callback. */
  readonly iterator: AsyncIterator<JsMsg> | undefined
  stopped: boolean
}

const stopSession = (session: Session): void => {
  if (session.stopped) return
  session.stopped = true
  // `close` unsubscribes the pull inbox synchronously: nothing more is
  // pulled. Its promise only settles once the iterator has drained, so it is
  // not awaited; `return` ends an iterator suspended at a `yield`.
  try {
    session.messages.close().catch(() => undefined)
  } catch {
    // the connection is already closed
  }
  try {
    session.iterator?.return?.().catch(() => undefined)
  } catch {
    // ignored
  }
}

/**
 * Builds a consumer handle in the current scope. Closing the scope stops
 * every running `consume` / `fetch` of the handle (before the connection
 * drains, when the handle's scope closes first, as with layers).
 *
 * @category constructors
 * @since 0.1.0
 */
export const make: (
  options: ConsumerOptions
) => Effect.Effect<ConsumerShape, E.NatsError, NatsClient | Scope.Scope> = Effect.fn(
  "Consumer.make"
)(function*(options: ConsumerOptions) {
  const client = yield* NatsClient
  const nc = client.connection
  const js = jetstream(nc)
  const stream = options.stream
  const jsm: JetStreamManager = yield* Effect.tryPromise({
    try: () => jetstreamManager(nc),
    catch: (cause) => jsFromUnknown(cause, { operation: "Consumer.make", stream })
  })
  const kind: ConsumerShape["kind"] = "ordered" in options ? "ordered" : "durable" in options ? "durable" : "config"
  const recoveryDefault: Schedule.Schedule<unknown, E.NatsError> = "ordered" in options
    ? defaultRecovery
    : options.recovery ?? defaultRecovery
  const ctxOf = (operation: string): ConsumerContext => ({ operation, stream, consumer: currentName })

  const termReasons = () => JsEnvelope.supportsTermReason(nc.info?.version)
  const statusHub = yield* PubSub.sliding<ConsumerStatus>(1024)
  const publish = (status: ConsumerStatus) => PubSub.publishUnsafe(statusHub, status)

  const orderedOpts = "ordered" in options ? orderedOptions(options.ordered) : undefined

  const push = "push" in options && options.push !== undefined && options.push !== false
  const lookup = (name: string, operation: string): Effect.Effect<JsConsumer | PushConsumer, E.NatsError> =>
    Effect.tryPromise({
      try: (): Promise<JsConsumer | PushConsumer> =>
        push ? js.consumers.getPushConsumer(stream, name) : js.consumers.get(stream, name),
      catch: (cause) => consumerFromUnknown(cause, { operation, stream, consumer: name })
    })

  const createOrUpdate = (config: ConsumerConfig.ConsumerConfig, operation: string) =>
    Effect.gen(function*() {
      const pushOptions = "push" in options && typeof options.push === "object" ? options.push : undefined
      const wire = pushOptions === undefined ? ConsumerConfig.toNats(config) : {
        ...ConsumerConfig.toNats(config),
        deliver_subject: pushOptions.deliverSubject ?? createInbox(),
        ...(pushOptions.deliverGroup === undefined ? {} : { deliver_group: pushOptions.deliverGroup }),
        flow_control: true,
        idle_heartbeat: Number(
          Duration.toNanosUnsafe(Duration.fromInputUnsafe(pushOptions.idleHeartbeat ?? "5 seconds"))
        )
      }
      const durable = config.durable
      const ctx = { operation, stream, consumer: durable ?? "(ephemeral)" }
      const exists = durable === undefined ? false : yield* Effect.tryPromise({
        try: () => jsm.consumers.info(stream, durable),
        catch: (cause) => consumerFromUnknown(cause, ctx)
      }).pipe(
        Effect.as(true),
        Effect.catchIf((e) => e.reason._tag === "ConsumerNotFound", () => Effect.succeed(false))
      )
      const info = yield* Effect.tryPromise({
        try: () =>
          durable !== undefined && exists
            ? jsm.consumers.update(stream, durable, wire)
            : jsm.consumers.add(stream, wire),
        catch: (cause) => consumerFromUnknown(cause, ctx)
      })
      return yield* lookup(info.name, operation)
    })

  const initial = (operation: string): Effect.Effect<JsConsumer | PushConsumer, E.NatsError> =>
    "ordered" in options
      ? Effect.tryPromise({
        // a copy: nats.js writes its generated name prefix into the options
        try: () => js.consumers.get(stream, { ...orderedOpts }),
        catch: (cause) => consumerFromUnknown(cause, { operation, stream, consumer: "(ordered)" })
      })
      : "durable" in options
      ? lookup(options.durable, operation)
      : createOrUpdate(options.config, operation)

  let current: JsConsumer | PushConsumer = yield* initial("Consumer.make")
  // the name the consumer had when it was looked up (cached info, no request)
  const nameOf = (c: JsConsumer | PushConsumer) => Effect.promise(() => c.info(true).then((info) => info.name))
  let currentName = yield* nameOf(current)

  /** Brings the consumer back after it (or its stream) went missing. */
  const recover = (attempt: number, cause: E.NatsError) =>
    Effect.gen(function*() {
      publish({
        _tag: "Recovering",
        attempt,
        reason: cause.reason._tag === "StreamNotFound" ? "StreamNotFound" : "ConsumerNotFound",
        message: cause.message
      })
      const recreated = "config" in options
      current = yield* initial("Consumer.recover")
      currentName = yield* nameOf(current)
      publish({ _tag: "Recovered", consumer: currentName, recreated })
      yield* Effect.logInfo(
        `nats: consumer ${currentName} of stream ${stream} ${recreated ? "recreated" : "found again"}`
      )
    })

  const sessions = new Set<Session>()
  let closing = false
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      closing = true
      for (const session of sessions) stopSession(session)
      sessions.clear()
      // the handle's own ordered consumer (used by fetch / next) lives on the
      // server for its 5 minute inactive threshold otherwise
      if (kind === "ordered") void current.delete().catch(() => undefined)
    })
  )

  /**
   * One nats.js `consume` / `fetch` as a Stream of raw messages through a
   * bounded queue. The pump offers with backpressure: while the queue is
   * full the nats.js iterator is not advanced and nothing more is pulled.
   */
  const session = (
    open: (deliver: ((msg: JsMsg) => void) | undefined) => Promise<ConsumerMessages>,
    operation: string,
    bufferSize: number,
    continuous: boolean,
    onStop?: () => void,
    /** Whether nats.js may deliver through a callback (the server bounds what is in flight). */
    callbackMode: () => Promise<boolean> = () => Promise.resolve(false),
    onReceive?: (msg: JsMsg) => void
  ): Stream.Stream<JsMsg, E.NatsError> =>
    Stream.unwrap(Effect.gen(function*() {
      const ctx = ctxOf(operation)
      const callback = yield* Effect.tryPromise({
        try: callbackMode,
        catch: (cause) => consumerFromUnknown(cause, ctx)
      })
      // In callback mode the queue is not bounded here: the server bounds what
      // is delivered and not yet acked (max_ack_pending). Otherwise it is
      // bounded, and the pump waits for room before it reads the next message.
      const queue = yield* Queue.make<JsMsg, E.NatsError | Cause.Done>(callback ? {} : { capacity: bufferSize })
      const deliver = !callback
        ? undefined
        : onReceive === undefined
        ? (msg: JsMsg) => void Queue.offerUnsafe(queue, msg)
        : (msg: JsMsg) => {
          onReceive(msg)
          Queue.offerUnsafe(queue, msg)
        }
      const s = yield* Effect.acquireRelease(
        Effect.tryPromise({ try: () => open(deliver), catch: (cause) => consumerFromUnknown(cause, ctx) }).pipe(
          Effect.map((messages): Session => ({
            messages,
            iterator: callback ? undefined : messages[Symbol.asyncIterator](),
            stopped: false
          }))
        ),
        (s) =>
          Effect.sync(() => {
            sessions.delete(s)
            stopSession(s)
            try {
              onStop?.()
            } catch {
              // best effort
            }
          })
      )
      sessions.add(s)
      const statusIterator = s.messages.status()[Symbol.asyncIterator]()
      yield* Effect.addFinalizer(() => Effect.sync(() => void statusIterator.return?.().catch(() => undefined)))
      yield* Effect.forkScoped(
        Effect.gen(function*() {
          while (true) {
            const result = yield* Effect.tryPromise(() => statusIterator.next())
            if (result.done === true) return
            const status = toStatus(result.value)
            if (status !== undefined) publish(status)
            // nats.js does not check a push consumer whose heartbeats stopped: is it gone?
            if (push && status?._tag === "HeartbeatsMissed") {
              yield* Effect.tryPromise({
                try: () => jsm.consumers.info(stream, currentName),
                catch: (cause) => consumerFromUnknown(cause, ctx)
              }).pipe(
                Effect.catchIf(isMissingResource, (error) => Queue.fail(queue, error)),
                Effect.ignore
              )
            }
          }
        }).pipe(Effect.ignore)
      )
      // The pump is a plain async loop (no Effect per message): a message goes
      // into the queue at once when there is room; only a full queue waits,
      // through an Effect offer that suspends (nothing more is pulled meanwhile).
      const endedUnexpectedly = () =>
        new E.NatsError({
          reason: nc.isClosed()
            ? new E.ConnectionClosed({ operation, message: `connection closed while consuming ${ctx.consumer}` })
            : new E.Unknown({ operation, message: `consume of ${ctx.consumer} ended unexpectedly` })
        })
      const runFork = Effect.runForkWith(yield* Effect.context<never>())
      const iterator = s.iterator
      if (iterator === undefined) {
        // callback mode: the end of the messages ends (or fails) the stream
        s.messages.closed().then(
          (err) => {
            if (err instanceof Error) Queue.failCauseUnsafe(queue, Cause.fail(consumerFromUnknown(err, ctx)))
            else if (continuous && !closing && !s.stopped) {
              Queue.failCauseUnsafe(queue, Cause.fail(endedUnexpectedly()))
            } else Queue.endUnsafe(queue)
          },
          (cause) => Queue.failCauseUnsafe(queue, Cause.fail(consumerFromUnknown(cause, ctx)))
        )
        return Stream.fromQueue(queue)
      }
      const pump = async (): Promise<void> => {
        while (!s.stopped) {
          const result = await iterator.next()
          if (result.done === true) {
            if (continuous && !closing && !s.stopped) Queue.failCauseUnsafe(queue, Cause.fail(endedUnexpectedly()))
            else Queue.endUnsafe(queue)
            return
          }
          onReceive?.(result.value)
          if (!Queue.offerUnsafe(queue, result.value)) {
            const offered = await new Promise<boolean>((resolve) => {
              runFork(Queue.offer(queue, result.value)).addObserver((exit) =>
                resolve(exit._tag === "Success" && exit.value)
              )
            })
            if (!offered) return
          }
        }
      }
      yield* Effect.sync(() => {
        pump().catch((cause) => Queue.failCauseUnsafe(queue, Cause.fail(consumerFromUnknown(cause, ctx))))
      })
      return Stream.fromQueue(queue)
    }))

  /** Retries a session by the recovery schedule while the consumer or stream is missing. */
  const withRecovery = (
    make: () => Stream.Stream<JsMsg, E.NatsError>,
    schedule: Schedule.Schedule<unknown, E.NatsError>
  ): Stream.Stream<JsMsg, E.NatsError> => {
    let failure: E.NatsError | undefined
    let attempt = 0
    const once = Stream.suspend(() => {
      const previous = failure
      failure = undefined
      const start = previous === undefined ? Stream.empty : Stream.fromEffect(recover(++attempt, previous)).pipe(
        Stream.drain
      )
      // The failure is recorded whether the recovery step or the session
      // failed, so that every retry recovers first.
      return Stream.concat(
        start,
        // chunk-wise (a `Stream.tap` would hand on one message per chunk)
        Stream.mapArray(make(), (chunk) => {
          attempt = 0
          return chunk
        })
      ).pipe(
        Stream.tapError((error) =>
          Effect.sync(() => {
            if (isMissingResource(error)) failure = error
          })
        )
      )
    })
    return Stream.retry(
      once,
      Schedule.while(schedule, ({ input }) => isMissingResource(input) && !closing)
    )
  }

  const consumeRaw = (options: ConsumeOptions | undefined): Stream.Stream<JsMsg, E.NatsError> => {
    const natsOptions: NatsConsumeOptions = {
      ...(options?.maxBytes === undefined
        ? { max_messages: options?.maxMessages ?? 100 }
        : { max_bytes: options.maxBytes }),
      ...(options?.thresholdMessages === undefined ? {} : { threshold_messages: options.thresholdMessages }),
      ...(options?.thresholdBytes === undefined ? {} : { threshold_bytes: options.thresholdBytes }),
      ...(options?.expires === undefined ? {} : { expires: millis(options.expires) }),
      ...(options?.idleHeartbeat === undefined ? {} : { idle_heartbeat: millis(options.idleHeartbeat) }),
      ...(kind === "ordered" ? {} : { abort_on_missing_resource: true })
    }
    const bufferSize = options?.bufferSize ?? 256
    if (kind === "ordered") {
      // a fresh ordered consumer per consume: each one replays from the start
      return Stream.suspend(() => {
        let replay: JsConsumer | undefined
        return session(
          () =>
            js.consumers.get(stream, { ...orderedOpts }).then((c) => {
              replay = c
              return c.consume(natsOptions)
            }),
          "Consumer.consume",
          bufferSize,
          true,
          // the server would keep the replay's consumer for its 5 minute inactive threshold
          () => void replay?.delete().catch(() => undefined),
          undefined,
          options?.onReceive
        )
      })
    }
    return withRecovery(
      () =>
        session(
          (deliver) => {
            const c = current
            return c.isPushConsumer()
              ? (c as PushConsumer).consume({ abort_on_missing_resource: true })
              : (c as JsConsumer).consume(deliver === undefined ? natsOptions : { ...natsOptions, callback: deliver })
          },
          "Consumer.consume",
          bufferSize,
          true,
          undefined,
          // A pull consumer with explicit acks and a max_ack_pending: the server
          // never has more than that many messages out, so nats.js may deliver
          // through its callback (much faster than its async iterator).
          async () => {
            const c = current
            if (c.isPushConsumer()) return false
            const ci = await (c as JsConsumer).info(true)
            const limit = ci.config.max_ack_pending ?? 0
            return ci.config.ack_policy === "explicit" && limit > 0 && limit <= 65_536
          },
          options?.onReceive
        ),
      options?.recovery ?? recoveryDefault
    )
  }

  /** A 503 from a fetch means nobody answered the pull: find out whether the consumer is gone. */
  const classify = (error: E.NatsError, operation: string): Effect.Effect<never, E.NatsError> =>
    kind !== "ordered" && error.reason._tag === "Timeout"
      ? Effect.tryPromise({
        try: () => jsm.consumers.info(stream, currentName),
        catch: (cause) => consumerFromUnknown(cause, ctxOf(operation))
      }).pipe(
        Effect.matchEffect({
          onFailure: (infoError) => Effect.fail(isMissingResource(infoError) ? infoError : error),
          onSuccess: () => Effect.fail(error)
        })
      )
      : Effect.fail(error)

  const fetchRaw = (options: FetchOptions, operation: string): Stream.Stream<JsMsg, E.NatsError> => {
    const natsOptions: NatsFetchOptions = {
      max_messages: options.batch,
      ...(options.maxBytes === undefined ? {} : { max_bytes: options.maxBytes }),
      expires: millis(options.maxWait ?? 30_000)
    }
    const once = () =>
      session(
        () => {
          const c = current
          return c.isPushConsumer()
            ? Promise.reject(
              new E.NatsError({
                reason: new E.InvalidArgument({
                  operation,
                  message: `${currentName} is a push consumer: use consume (fetch and next need a pull consumer)`
                })
              })
            )
            : (c as JsConsumer).fetch(natsOptions)
        },
        operation,
        Math.max(1, Math.min(options.batch, 1024)),
        false
      ).pipe(
        Stream.catch((error) => Stream.fromEffect(classify(error, operation)))
      )
    return kind === "config" ? withRecovery(once, recoveryDefault) : once()
  }

  const consume = (
    options?: ConsumeOptions & Partial<DecodeOptions<unknown, unknown>>
  ): Stream.Stream<JsEnvelope.JsEnvelope<unknown>, E.NatsError | Codec.DecodeError, unknown> => {
    const raw = consumeRaw(options)
    const decoded = options?.codec === undefined
      ? rawEnvelopes(raw, termReasons())
      : decodeMessages(raw, options.codec, options.onDecodeError as OnDecodeError<unknown> | undefined, termReasons())
    return Stream.withSpan(decoded, "Consumer.consume", { attributes: { stream, consumer: currentName } })
  }

  const fetch = (
    options: FetchOptions & Partial<DecodeOptions<unknown, unknown>>
  ): Stream.Stream<JsEnvelope.JsEnvelope<unknown>, E.NatsError | Codec.DecodeError, unknown> => {
    const raw = fetchRaw(options, "Consumer.fetch")
    const decoded = options.codec === undefined
      ? rawEnvelopes(raw, termReasons())
      : decodeMessages(raw, options.codec, options.onDecodeError as OnDecodeError<unknown> | undefined, termReasons())
    return Stream.withSpan(decoded, "Consumer.fetch", { attributes: { stream, consumer: currentName } })
  }

  const next = Effect.fn("Consumer.next")(function*(
    options?: NextOptions & Partial<DecodeOptions<unknown, unknown>>
  ) {
    const raw = fetchRaw(
      { batch: 1, ...(options?.maxWait === undefined ? {} : { maxWait: options.maxWait }) },
      "Consumer.next"
    )
    const decoded = options?.codec === undefined
      ? rawEnvelopes(raw, termReasons())
      : decodeMessages(raw, options.codec, options.onDecodeError as OnDecodeError<unknown> | undefined, termReasons())
    return yield* Stream.runHead(decoded)
  })

  const shape: ConsumerShape = {
    stream,
    kind,
    name: Effect.suspend(() => nameOf(current)),
    raw: Effect.sync(() => current),
    push,
    info: Effect.suspend(() =>
      Effect.tryPromise({
        try: () => current.info(),
        catch: (cause) => consumerFromUnknown(cause, ctxOf("Consumer.info"))
      })
    ),
    consume: consume as ConsumerShape["consume"],
    fetch: fetch as ConsumerShape["fetch"],
    next: next as ConsumerShape["next"],
    status: Stream.fromPubSub(statusHub)
  }
  return shape
})

/**
 * A layer providing the `Consumer` service.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options: ConsumerOptions): Layer.Layer<Consumer, E.NatsError, NatsClient> =>
  Layer.effect(Consumer, make(options))
