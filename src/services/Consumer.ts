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
  FetchOptions as NatsFetchOptions,
  JsMsg,
  OrderedConsumerOptions,
  PushConsumer
} from "@nats-io/jetstream"
import { createInbox } from "@nats-io/nats-core"
import type { Scope } from "effect"
import { Context, Duration, Effect, Layer, Option, PubSub, Result, Schedule, Stream } from "effect"
import type { ConsumerContext } from "../internal/consumerErrors.ts"
import { consumerFromUnknown, isMissingResource } from "../internal/consumerErrors.ts"
import { withRecovery } from "../internal/consumerRecovery.ts"
import * as Session from "../internal/consumerSession.ts"
import type { NatsCore } from "../internal/core.ts"
import * as Decode from "../internal/decode.ts"
import { millis } from "../internal/duration.ts"
import { invalidArgument } from "../internal/errors.ts"
import * as Validation from "../internal/validation.ts"
import type * as Codec from "../schemas/Codec.ts"
import * as CodecModule from "../schemas/Codec.ts"
import * as ConsumerConfig from "../schemas/ConsumerConfig.ts"
import type * as NatsError from "../schemas/NatsError.ts"
import type { JetStreamManagerShape } from "./JetStreamManager.ts"
import { JetStreamManager } from "./JetStreamManager.ts"
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
  readonly recovery?: Schedule.Schedule<unknown, NatsError.NatsError> | undefined
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
  /**
   * The server's heartbeat while a pull waits: at most half of `expires`.
   * Default 1 s (or half of a shorter `expires`), for fast failover: when
   * neither a message nor a heartbeat came for 3 intervals while the Stream
   * had room, the pull is stalled (its requests were lost with a consumer
   * leader on a cluster, say: nats.js alone would wait a whole `expires`),
   * and it is opened again at once, with a `Stalled` status.
   */
  readonly idleHeartbeat?: Duration.Input | undefined
  /** The Stream's own buffer (messages handed out by nats.js, not yet pulled by the Stream). Default 256. */
  readonly bufferSize?: number | undefined
  /** Overrides the handle's recovery schedule. */
  readonly recovery?: Schedule.Schedule<unknown, NatsError.NatsError> | undefined
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
 * handle's own recovery steps (`Stalled`, `Recovering`, `Recovered`).
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
  | {
    /** A pull got neither a message nor a heartbeat for 3 heartbeat intervals: it is opened again. */
    readonly _tag: "Stalled"
    readonly message: string
  }

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
  readonly name: Effect.Effect<string, NatsError.NatsError>
  /**
   * The current raw nats.js consumer (escape hatch). An ordered handle's own
   * consumer (the one `fetch`, `next` and `info` use) is made at its first
   * use, so this can fail.
   */
  readonly raw: Effect.Effect<JsConsumer | PushConsumer, NatsError.NatsError>
  /** Whether this is a push consumer (`consume` only; `fetch` and `next` fail with `InvalidArgument`). */
  readonly push: boolean
  /** The consumer's info from the server. */
  readonly info: Effect.Effect<ConsumerInfo, NatsError.NatsError>
  /**
   * The continuous pull flow as a Stream of envelopes (raw bytes as `value`
   * unless a `codec` is given). Runs until interrupted; recovers as the
   * module documentation says.
   */
  readonly consume: {
    <A, R = never>(
      options: ConsumeOptions & DecodeOptions<A, R>
    ): Stream.Stream<JsEnvelope.JsEnvelope<A>, NatsError.NatsError | Codec.DecodeError, R>
    (options?: ConsumeOptions): Stream.Stream<JsEnvelope.JsEnvelope<Uint8Array>, NatsError.NatsError>
  }
  /** One pull of at most `batch` messages; ends when the batch is complete or `maxWait` has passed. */
  readonly fetch: {
    <A, R = never>(
      options: FetchOptions & DecodeOptions<A, R>
    ): Stream.Stream<JsEnvelope.JsEnvelope<A>, NatsError.NatsError | Codec.DecodeError, R>
    (options: FetchOptions): Stream.Stream<JsEnvelope.JsEnvelope<Uint8Array>, NatsError.NatsError>
  }
  /**
   * The next message, or `None` when none came within `maxWait` (or it did
   * not decode and the policy skipped it).
   */
  readonly next: {
    <A, R = never>(
      options: NextOptions & DecodeOptions<A, R>
    ): Effect.Effect<Option.Option<JsEnvelope.JsEnvelope<A>>, NatsError.NatsError | Codec.DecodeError, R>
    (options?: NextOptions): Effect.Effect<Option.Option<JsEnvelope.JsEnvelope<Uint8Array>>, NatsError.NatsError>
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

// -----------------------------------------------------------------------------
// Decoding
// -----------------------------------------------------------------------------

/** `logAndSkip` on JetStream: the message is terminated (the same bytes would fail again), and logged. */
const logAndSkip = (termReasons: boolean) => (error: Codec.DecodeError, msg: JsMsg): Effect.Effect<void> =>
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
 * with the codec and applying the decode failure policy, a chunk at a time.
 * `termReasons`: whether the server records `term` reasons (see
 * `JsEnvelope.supportsTermReason`).
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
  const codec = CodecModule.fromInput(codecInput)
  return Decode.decodeStream(messages, {
    decode: (msg: JsMsg, out: Array<JsEnvelope.JsEnvelope<A>>) => {
      const decoded = Decode.payload(codec, msg)
      if (Result.isFailure(decoded)) return decoded.failure
      out.push(JsEnvelope.make(decoded.success, msg, termReasons))
      return undefined
    },
    policy: onDecodeError === "logAndSkip" ? logAndSkip(termReasons) : onDecodeError
  })
}

/** Envelopes of raw messages (no codec), or decoded ones. */
const envelopes = <E>(
  messages: Stream.Stream<JsMsg, E>,
  options: Partial<DecodeOptions<unknown, unknown>> | undefined,
  termReasons: boolean
): Stream.Stream<JsEnvelope.JsEnvelope<unknown>, E | Codec.DecodeError, unknown> =>
  options?.codec === undefined
    ? Stream.map(messages, (msg) => JsEnvelope.make<unknown>(msg.data, msg, termReasons))
    : decodeMessages(messages, options.codec, options.onDecodeError as OnDecodeError<unknown> | undefined, termReasons)

// -----------------------------------------------------------------------------
// Bindings: what differs between a durable, a configured and an ordered handle
// -----------------------------------------------------------------------------

/** The services a handle works with. */
interface Env {
  readonly stream: string
  readonly core: NatsCore
  readonly jsm: JetStreamManagerShape
}

const environment = (stream: string): Effect.Effect<Env, never, NatsClient | JetStreamManager> =>
  Effect.map(
    Effect.all([NatsClient, JetStreamManager]),
    ([client, jsm]): Env => ({ stream, core: client.core, jsm })
  )

/** How a handle finds its consumer, and how it recovers and cleans up. */
interface Binding {
  readonly kind: ConsumerShape["kind"]
  readonly push: boolean
  /** Finds (or creates) the consumer: at build, and to recover. */
  readonly resolve: (operation: string) => Effect.Effect<JsConsumer | PushConsumer, NatsError.NatsError>
  /** Whether `resolve` recreates a missing consumer (the handle owns its config): `fetch` recovers too. */
  readonly recreates: boolean
  /** Retries of `consume` (and of `fetch` when `recreates`) while the consumer or its stream is missing. */
  readonly recovery: Schedule.Schedule<unknown, NatsError.NatsError>
  /** An ordered handle: each `consume` replays from the start with a fresh ordered consumer. */
  readonly replay?: (() => Promise<JsConsumer>) | undefined
}

const lookup = (
  env: Env,
  name: string,
  push: boolean,
  operation: string
): Effect.Effect<JsConsumer | PushConsumer, NatsError.NatsError> =>
  Effect.tryPromise({
    try: (): Promise<JsConsumer | PushConsumer> =>
      push
        ? env.jsm.client.consumers.getPushConsumer(env.stream, name)
        : env.jsm.client.consumers.get(env.stream, name),
    catch: (cause) => consumerFromUnknown(cause, { operation, stream: env.stream, consumer: name })
  })

/**
 * The config of a push consumer. A durable that exists already keeps what
 * the push options leave unset (its deliver subject and group, its flow
 * control and heartbeat: the server refuses to change the last two, so a
 * durable made by another client, with other defaults, is taken over as it
 * is); a new one gets a fresh inbox, flow control and a 5 second heartbeat.
 * A requested value the server will not change fails, naming the field.
 */
const pushConfig = (
  env: Env,
  config: ConsumerConfig.ConsumerConfig,
  push: PushOptions
): Effect.Effect<ConsumerConfig.ConsumerConfig, NatsError.NatsError> =>
  Effect.gen(function*() {
    const operation = "Consumer.fromConfig"
    const invalid = Validation.durations(operation, { idleHeartbeat: push.idleHeartbeat }, "100 millis")
    if (invalid !== undefined) return yield* invalid
    const durable = config.durable
    const existing = durable === undefined ? undefined : yield* env.jsm.consumerInfo(env.stream, durable).pipe(
      Effect.map((info) => info.config),
      Effect.catchIf((error) => error.reason._tag === "ConsumerNotFound", () => Effect.succeed(undefined))
    )
    const current = existing?.deliverSubject === undefined ? undefined : existing
    const deliverGroup = push.deliverGroup ?? config.deliverGroup ?? current?.deliverGroup
    return {
      ...config,
      deliverSubject: push.deliverSubject ?? config.deliverSubject ?? current?.deliverSubject ?? createInbox(),
      ...(deliverGroup === undefined ? {} : { deliverGroup }),
      flowControl: config.flowControl ?? current?.flowControl ?? true,
      idleHeartbeat: push.idleHeartbeat !== undefined
        ? Duration.fromInputUnsafe(push.idleHeartbeat)
        : config.idleHeartbeat ?? (current !== undefined ? current.idleHeartbeat ?? Duration.zero : Duration.seconds(5))
    }
  })

/**
 * What building a consumer handle needs: the connection, the JetStream
 * manager it is made through (on that connection), and the scope it lives in.
 *
 * @category models
 * @since 0.1.0
 */
export type Requirements = NatsClient | JetStreamManager | Scope.Scope

/** The constructor of the handles of one kind of binding, traced as `span`. */
const bound =
  <O extends { readonly stream: string }>(span: string, bind: (env: Env, options: O) => Binding) =>
  (options: O): Effect.Effect<ConsumerShape, NatsError.NatsError, Requirements> =>
    Effect.flatMap(environment(options.stream), (env) => handle(env, bind(env, options))).pipe(Effect.withSpan(span))

/**
 * Binds to an existing durable consumer by name. Building the handle fails
 * with `ConsumerNotFound` / `StreamNotFound` when it does not exist; while
 * consuming, a consumer that disappears is looked up again by the recovery
 * schedule (someone else must recreate it).
 *
 * @example
 * ```ts
 * const consumer = yield* Consumer.durable({ stream: "ORDERS", durable: "order-worker" })
 * yield* consumer.consume({ codec: Order }).pipe(Stream.runForEach((m) => m.ack))
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const durable: (options: DurableOptions) => Effect.Effect<ConsumerShape, NatsError.NatsError, Requirements> =
  bound("Consumer.durable", (env, options: DurableOptions) => {
    const push = options.push === true
    return {
      kind: "durable",
      push,
      resolve: (operation) => lookup(env, options.durable, push, operation),
      recreates: false,
      recovery: options.recovery ?? defaultRecovery
    }
  })

/**
 * Creates the consumer from a typed config (or updates the durable of that
 * name to it) through `JetStreamManager`; without a `durable` name it is
 * ephemeral. While consuming, a consumer (or stream) that disappears is
 * recreated by the recovery schedule. `push` makes it a push consumer.
 *
 * @example
 * ```ts
 * const consumer = yield* Consumer.fromConfig({
 *   stream: "ORDERS",
 *   config: { durable: "order-processor", filterSubject: "orders.created", maxDeliver: 5 }
 * })
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const fromConfig: (options: ConfigOptions) => Effect.Effect<ConsumerShape, NatsError.NatsError, Requirements> =
  bound("Consumer.fromConfig", (env, options: ConfigOptions) => {
    // a deliver subject in the config makes it a push consumer too
    const push = options.push !== undefined || options.config.deliverSubject !== undefined
    const configured = push ? pushConfig(env, options.config, options.push ?? {}) : Effect.succeed(options.config)
    return {
      kind: "config",
      push,
      resolve: (operation) =>
        configured.pipe(
          Effect.flatMap((config) =>
            config.durable === undefined
              ? env.jsm.addConsumer(env.stream, config)
              : env.jsm.createOrUpdateConsumer(env.stream, config)
          ),
          // just created on a cluster, a replicated consumer may not answer yet (no leader of its own):
          // looked up again for a moment
          Effect.flatMap((info) =>
            lookup(env, info.name, push, operation).pipe(
              Effect.retry({
                schedule: Schedule.spaced("100 millis"),
                times: 20,
                while: (e) => e.reason._tag === "ConsumerNotFound"
              })
            )
          )
        ),
      recreates: true,
      recovery: options.recovery ?? defaultRecovery
    }
  })

/**
 * An ordered consumer: replays the stream (or the subjects matching
 * `filterSubject`) in order, without acks; nats.js recreates it when it
 * loses its place. Each `consume` replays from the start again; `fetch` /
 * `next` continue where the previous call stopped.
 *
 * @example
 * ```ts
 * const replay = yield* Consumer.ordered({ stream: "ORDERS", ordered: { deliver: ConsumerConfig.deliver.all } })
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const ordered: (options: OrderedOptions) => Effect.Effect<ConsumerShape, NatsError.NatsError, Requirements> =
  bound("Consumer.ordered", (env, options: OrderedOptions) => {
    const config = orderedOptions(options.ordered)
    // a copy each time: nats.js writes its generated name prefix into the options
    const open = () => env.jsm.client.consumers.get(env.stream, { ...config })
    return {
      kind: "ordered",
      push: false,
      resolve: (operation) =>
        Effect.tryPromise({
          try: open,
          catch: (cause) => consumerFromUnknown(cause, { operation, stream: env.stream, consumer: "(ordered)" })
        }),
      recreates: false,
      recovery: defaultRecovery,
      replay: open
    }
  })

/**
 * Builds a consumer handle in the current scope: `durable` for
 * `{ durable }`, `fromConfig` for `{ config }`, `ordered` for `{ ordered }`.
 * Closing the scope stops every running `consume` / `fetch` of the handle
 * (before the connection drains, when the handle's scope closes first, as
 * with layers).
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (options: ConsumerOptions): Effect.Effect<ConsumerShape, NatsError.NatsError, Requirements> =>
  "ordered" in options ? ordered(options) : "durable" in options ? durable(options) : fromConfig(options)

// -----------------------------------------------------------------------------
// The handle
// -----------------------------------------------------------------------------

/** What is wrong with consume options, if anything. */
const checkConsume = (options: ConsumeOptions | undefined): NatsError.NatsError | undefined => {
  if (options === undefined) return undefined
  const operation = "Consumer.consume"
  if (options.maxMessages !== undefined && options.maxBytes !== undefined) {
    return invalidArgument(operation, "maxMessages and maxBytes exclude each other")
  }
  return Validation.counts(operation, undefined, {
    maxMessages: options.maxMessages,
    maxBytes: options.maxBytes,
    thresholdMessages: options.thresholdMessages,
    thresholdBytes: options.thresholdBytes,
    bufferSize: options.bufferSize
  }) ??
    Validation.durations(operation, { expires: options.expires }, "1 second") ??
    Validation.durations(operation, { idleHeartbeat: options.idleHeartbeat }) ??
    (heartbeatOf(options) * 2 > millis(options.expires ?? defaultExpiresMillis)
      ? invalidArgument(operation, "idleHeartbeat must be at most half of expires (the server refuses more)")
      : undefined)
}

/** The default pull expiry of `consume`. */
const defaultExpiresMillis = 30_000

/** The default heartbeat of `consume`: 1 s (at most half the expiry, as the server requires). */
const heartbeatOf = (options: ConsumeOptions | undefined): number =>
  options?.idleHeartbeat === undefined
    ? Math.min(1000, Math.floor((options?.expires === undefined ? defaultExpiresMillis : millis(options.expires)) / 2))
    : millis(options.idleHeartbeat)

/** nats.js consume options from ours; `abort_on_missing_resource` lets recovery see a missing consumer. */
const consumeOptions = (options: ConsumeOptions | undefined, ordered: boolean): NatsConsumeOptions => ({
  ...(options?.maxBytes === undefined
    ? { max_messages: options?.maxMessages ?? 100 }
    : { max_bytes: options.maxBytes }),
  ...(options?.thresholdMessages === undefined ? {} : { threshold_messages: options.thresholdMessages }),
  ...(options?.thresholdBytes === undefined ? {} : { threshold_bytes: options.thresholdBytes }),
  expires: options?.expires === undefined ? defaultExpiresMillis : millis(options.expires),
  idle_heartbeat: heartbeatOf(options),
  ...(ordered ? {} : { abort_on_missing_resource: true })
})

/**
 * A pull consumer with explicit acks and a `max_ack_pending`: the server
 * never has more than that many messages out, so nats.js may deliver through
 * its callback (much faster than its async iterator).
 */
const callbackMode = async (c: JsConsumer | PushConsumer): Promise<boolean> => {
  if (c.isPushConsumer()) return false
  const ci = await (c as JsConsumer).info(true)
  const limit = ci.config.max_ack_pending ?? 0
  return ci.config.ack_policy === "explicit" && limit > 0 && limit <= 65_536
}

type Raw = JsConsumer | PushConsumer

/** Options of a session that the handle fills in itself. */
type OwnSessionOptions = "context" | "metricsConsumer" | "onStatus" | "sessions" | "connectionClosed"

/**
 * A live handle: the consumer it reads now (replaced when it is recovered),
 * its open sessions, and its status hub.
 */
class Handle {
  readonly sessions = new Session.Sessions()
  readonly env: Env
  readonly binding: Binding
  readonly hub: PubSub.PubSub<ConsumerStatus>
  /** Absent for an ordered handle until its own consumer is made (see `consumer`). */
  current: Raw | undefined
  /** An ordered handle's own consumer, being made or made. */
  private own: Promise<Raw> | undefined
  name: string

  constructor(
    env: Env,
    binding: Binding,
    hub: PubSub.PubSub<ConsumerStatus>,
    current: Raw | undefined,
    name: string
  ) {
    this.env = env
    this.binding = binding
    this.hub = hub
    this.current = current
    this.name = name
  }

  /**
   * The raw consumer. An ordered handle makes its own (for `fetch`, `next`,
   * `info`) at the first call: each `consume` replays with a fresh one, and
   * making one may cost the server a scan of the stream (last value per
   * subject of a large bucket: tens of milliseconds).
   */
  consumer(): Promise<Raw> {
    if (this.current !== undefined) return Promise.resolve(this.current)
    const replay = this.binding.replay
    if (replay === undefined) return Promise.reject(new Error(`consumer ${this.name} is not bound`))
    // closed: nothing is made that nobody would delete
    if (this.sessions.closing && this.own === undefined) {
      return Promise.reject(invalidArgument("Consumer", "the consumer handle was used after its scope closed"))
    }
    this.own ??= replay().then(
      (c) =>
        c.info(true).then((info) => {
          this.current = c
          this.name = info.name
          return c
        }),
      (cause) => {
        this.own = undefined
        throw cause
      }
    )
    return this.own
  }

  /** Deletes an ordered handle's own consumer (the server keeps it for its 5 minute inactive threshold otherwise). */
  deleteOwn(): void {
    void this.own?.then((c) => c.delete()).catch(() => undefined)
  }

  context(operation: string): ConsumerContext {
    return { operation, stream: this.env.stream, consumer: this.name }
  }

  report(status: ConsumerStatus): void {
    PubSub.publishUnsafe(this.hub, status)
  }

  /** Brings the consumer back after it (or its stream) went missing. */
  readonly recover = (attempt: number, cause: NatsError.NatsError): Effect.Effect<void, NatsError.NatsError> =>
    Effect.gen({ self: this }, function*() {
      this.report({
        _tag: "Recovering",
        attempt,
        reason: cause.reason._tag === "StreamNotFound" ? "StreamNotFound" : "ConsumerNotFound",
        message: cause.message
      })
      const recovered = yield* this.binding.resolve("Consumer.recover")
      this.name = yield* nameOf(recovered, this.env.stream, "Consumer.recover")
      this.current = recovered
      const recreated = this.binding.recreates
      this.report({ _tag: "Recovered", consumer: this.name, recreated })
      yield* Effect.logInfo(
        `nats: consumer ${this.name} of stream ${this.env.stream} ${recreated ? "recreated" : "found again"}`
      )
    })

  /** The missing-resource failure when the consumer is gone (asked when a pull got no answer, say). */
  missing(operation: string): Effect.Effect<NatsError.NatsError | undefined> {
    return this.env.jsm.consumerInfo(this.env.stream, this.name).pipe(
      Effect.matchEffect({
        onFailure: (error) => Effect.succeed(isMissingResource(error) ? error : undefined),
        onSuccess: () => Effect.succeed(undefined)
      }),
      Effect.withSpan(operation)
    )
  }

  /** A stalled pull: reported; the consumer looked up (gone: the missing-resource recovery takes over). */
  readonly onStall = (cause: NatsError.NatsError): Effect.Effect<void, NatsError.NatsError> =>
    Effect.gen({ self: this }, function*() {
      this.report({ _tag: "Stalled", message: cause.message })
      yield* Effect.logInfo(`nats: ${cause.message}`)
      // bounded: during an election the lookup may get no answer (then the pull just opens again;
      // nats.js looks the consumer up itself after two missed heartbeats)
      const gone = yield* this.missing("Consumer.checkStalled").pipe(Effect.timeoutOption("500 millis"))
      if (Option.isSome(gone) && gone.value !== undefined) return yield* Effect.fail(gone.value)
    })

  readonly onStatus = (status: ConsumerStatus): Effect.Effect<void, NatsError.NatsError> => {
    this.report(status)
    // nats.js does not check a push consumer whose heartbeats stopped: is it gone?
    if (!this.binding.push || status._tag !== "HeartbeatsMissed") return Effect.void
    return Effect.flatMap(
      this.missing("Consumer.checkPush"),
      (gone) => gone === undefined ? Effect.void : Effect.fail(gone)
    )
  }

  session(options: Omit<Session.SessionOptions, OwnSessionOptions>): Stream.Stream<JsMsg, NatsError.NatsError> {
    return Session.stream({
      ...options,
      context: () => this.context(options.operation),
      // an ordered consumer's name is made per replay: its messages are counted under "ordered"
      metricsConsumer: this.binding.kind === "ordered" ? "ordered" : this.name,
      onStatus: this.onStatus,
      sessions: this.sessions,
      connectionClosed: () => this.env.core.connection.isClosed()
    })
  }

  /** A session retried by the recovery schedule while the consumer or its stream is missing. */
  recovering(
    session: (afterStall: boolean) => Stream.Stream<JsMsg, NatsError.NatsError>,
    schedule: Schedule.Schedule<unknown, NatsError.NatsError>
  ): Stream.Stream<JsMsg, NatsError.NatsError> {
    return withRecovery({
      session,
      schedule,
      recover: this.recover,
      closing: () => this.sessions.closing,
      onStall: this.onStall
    })
  }

  /** The continuous pull flow (an ordered handle: a fresh replay from the start). */
  consume(options: ConsumeOptions | undefined): Stream.Stream<JsMsg, NatsError.NatsError> {
    const invalid = checkConsume(options)
    if (invalid !== undefined) return Stream.fail(invalid)
    const replay = this.binding.replay
    const natsOptions = consumeOptions(options, replay !== undefined)
    const common = {
      operation: "Consumer.consume",
      bufferSize: options?.bufferSize ?? 256,
      continuous: true,
      onReceive: options?.onReceive
    }
    if (replay !== undefined) {
      return Stream.suspend(() => {
        let replaying: JsConsumer | undefined
        return this.session({
          ...common,
          open: () =>
            replay().then((c) => {
              replaying = c
              return c.consume(natsOptions)
            }),
          // the server would keep the replay's consumer for its 5 minute inactive threshold
          onStop: () => void replaying?.delete().catch(() => undefined)
        })
      })
    }
    const session = (afterStall: boolean) =>
      this.session({
        ...common,
        afterStall,
        open: (deliver) =>
          this.consumer().then((c) =>
            c.isPushConsumer()
              ? (c as PushConsumer).consume({ abort_on_missing_resource: true })
              : (c as JsConsumer).consume(deliver === undefined ? natsOptions : { ...natsOptions, callback: deliver })
          ),
        callbackMode: () => this.consumer().then(callbackMode),
        // a push consumer's heartbeats are its config's, and nats.js watches them
        heartbeatMillis: this.binding.push ? undefined : natsOptions.idle_heartbeat,
        // two heartbeats: the server has dropped the closed pull's requests by then
        releaseNakDelayMillis: this.binding.push ? undefined : Math.max(1000, 2 * (natsOptions.idle_heartbeat ?? 1000))
      })
    return this.recovering(session, options?.recovery ?? this.binding.recovery)
  }

  /** One pull of at most `batch` messages; a pull that got no answer checks whether the consumer is gone. */
  fetch(options: FetchOptions, operation: string): Stream.Stream<JsMsg, NatsError.NatsError> {
    const invalid = Validation.counts(operation, undefined, { batch: options.batch, maxBytes: options.maxBytes }) ??
      Validation.durations(operation, { maxWait: options.maxWait }, "1 second")
    if (invalid !== undefined) return Stream.fail(invalid)
    const natsOptions: NatsFetchOptions = {
      max_messages: options.batch,
      ...(options.maxBytes === undefined ? {} : { max_bytes: options.maxBytes }),
      expires: millis(options.maxWait ?? 30_000)
    }
    const classify = (error: NatsError.NatsError): Effect.Effect<never, NatsError.NatsError> =>
      this.binding.replay === undefined && error.reason._tag === "Timeout"
        ? Effect.flatMap(this.missing(operation), (gone) => Effect.fail(gone ?? error))
        : Effect.fail(error)
    const once = () =>
      this.session({
        operation,
        open: () =>
          this.consumer().then((c) =>
            c.isPushConsumer()
              ? Promise.reject(
                invalidArgument(
                  operation,
                  `${this.name} is a push consumer: use consume (fetch and next need a pull consumer)`
                )
              )
              : (c as JsConsumer).fetch(natsOptions)
          ),
        bufferSize: Math.max(1, Math.min(options.batch, 1024)),
        continuous: false,
        releaseNakDelayMillis: this.binding.replay === undefined ? 1000 : undefined
      }).pipe(Stream.catch((error) => Stream.fromEffect(classify(error))))
    return this.binding.recreates ? this.recovering(once, this.binding.recovery) : once()
  }

  envelopes(
    raw: Stream.Stream<JsMsg, NatsError.NatsError>,
    options: Partial<DecodeOptions<unknown, unknown>> | undefined,
    span: string
  ): Stream.Stream<JsEnvelope.JsEnvelope<unknown>, NatsError.NatsError | Codec.DecodeError, unknown> {
    return Stream.withSpan(envelopes(raw, options, this.env.core.termReasons()), span, {
      attributes: { stream: this.env.stream, consumer: this.name }
    })
  }

  raw(operation: string): Effect.Effect<Raw, NatsError.NatsError> {
    return Effect.tryPromise({
      try: () => this.consumer(),
      catch: (cause) => consumerFromUnknown(cause, this.context(operation))
    })
  }

  shape(): ConsumerShape {
    return {
      stream: this.env.stream,
      kind: this.binding.kind,
      name: this.raw("Consumer.name").pipe(
        Effect.flatMap((c) => nameOf(c, this.env.stream, "Consumer.name"))
      ),
      raw: this.raw("Consumer.raw"),
      push: this.binding.push,
      info: Effect.suspend(() =>
        Effect.tryPromise({
          try: (): Promise<ConsumerInfo> => this.consumer().then((c) => c.info()),
          catch: (cause) => consumerFromUnknown(cause, this.context("Consumer.info"))
        })
      ),
      consume:
        ((options?: ConsumeOptions & Partial<DecodeOptions<unknown, unknown>>) =>
          this.envelopes(this.consume(options), options, "Consumer.consume")) as ConsumerShape["consume"],
      fetch:
        ((options: FetchOptions & Partial<DecodeOptions<unknown, unknown>>) =>
          this.envelopes(this.fetch(options, "Consumer.fetch"), options, "Consumer.fetch")) as ConsumerShape["fetch"],
      next: Effect.fn("Consumer.next")({ self: this }, function*(
        options?: NextOptions & Partial<DecodeOptions<unknown, unknown>>
      ) {
        const batch = { batch: 1, ...(options?.maxWait === undefined ? {} : { maxWait: options.maxWait }) }
        return yield* Stream.runHead(this.envelopes(this.fetch(batch, "Consumer.next"), options, "Consumer.next"))
      }) as ConsumerShape["next"],
      status: Stream.fromPubSub(this.hub)
    }
  }
}

/** The name the consumer had when it was looked up (cached info, no request). */
const nameOf = (c: Raw, stream: string, operation: string): Effect.Effect<string, NatsError.NatsError> =>
  Effect.tryPromise({
    try: () => c.info(true).then((info) => info.name),
    catch: (cause) => consumerFromUnknown(cause, { operation, stream, consumer: "(unnamed)" })
  })

/** A handle in the current scope: closing it stops every session (and deletes an ordered handle's consumer). */
const handle = Effect.fnUntraced(function*(env: Env, binding: Binding) {
  // an ordered handle's own consumer is made at its first use (`Handle.consumer`); its stream must exist
  const current = binding.replay === undefined ? yield* binding.resolve("Consumer.make") : undefined
  if (current === undefined) {
    yield* Effect.tryPromise({
      try: () => env.jsm.manager.streams.info(env.stream),
      catch: (cause) =>
        consumerFromUnknown(cause, { operation: "Consumer.make", stream: env.stream, consumer: "(ordered)" })
    })
  }
  const name = current === undefined ? "(ordered)" : yield* nameOf(current, env.stream, "Consumer.make")
  const self = new Handle(env, binding, yield* PubSub.sliding<ConsumerStatus>(1024), current, name)
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      self.sessions.closeAll()
      self.deleteOwn()
    })
  )
  return self.shape()
})

/**
 * A layer providing the `Consumer` service (see `make`).
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (
  options: ConsumerOptions
): Layer.Layer<Consumer, NatsError.NatsError, NatsClient | JetStreamManager> => Layer.effect(Consumer, make(options))
