/**
 * JetStream administration as an Effect service: create-or-update, inspect,
 * list, purge and delete streams and consumers from typed configurations.
 *
 * Create-or-update is idempotent: the current configuration is read first
 * and an update is sent only when a requested field differs from what the
 * server reports. Fields a configuration leaves unset keep the server's
 * current value (or its default on create). When the server refuses a
 * change, the error is reason `JetStreamApi` with `field` naming the
 * offending field (our camelCase name), found by diffing the current
 * configuration against the requested one.
 *
 * Returned infos use `Duration` for durations, plain numbers for sequences
 * and counters, and JavaScript `Date` for timestamps (the server's zero time
 * `0001-01-01T00:00:00Z`, e.g. the first message time of an empty stream, is
 * kept as the `Date` of that instant).
 *
 * Observed on nats-server 2.9.10: a stream update may change `subjects`,
 * `description`, `replicas`, `maxAge`, `maxBytes`, `maxMsgs`,
 * `maxMsgsPerSubject`, `maxMsgSize`, `discard`, `discardNewPerSubject`,
 * `duplicateWindow`, `denyDelete`, `denyPurge`, `allowRollup`, `allowDirect`
 * and `noAck`, but not `retention`, `storage` or `maxConsumers`. A durable
 * consumer update may change `description`, `filterSubject`, `ackWait`,
 * `maxDeliver`, `backoff`, `maxAckPending`, `maxBatch`, `maxExpires`,
 * `inactiveThreshold`, `headersOnly`, `replicas` and `memoryStorage`, but not
 * `ackPolicy`, `deliverPolicy` (including its start sequence or time),
 * `replayPolicy` or `maxWaiting`. When a consumer has a `backoff`, the server
 * silently sets `ackWait` to the first backoff step: a requested `ackWait` is
 * then ignored (and not counted as a difference). A durable push consumer's
 * update may change `deliverSubject` and `deliverGroup` (set, change), but
 * not `flowControl` ("flow control can not be updated") or `idleHeartbeat`
 * ("heart beats can not be updated"), nor turn a pull consumer into a push
 * one. Other values the server changes on its own: integer limits given as
 * `0` read back as `-1` (streams; a consumer's `maxDeliver`), a consumer's
 * `maxAckPending` `0` reads back as `1000`, a stream's `duplicateWindow`
 * `0` or unset reads back as 2 minutes (or `maxAge` when shorter), and text
 * with lone UTF-16 surrogates reads back with U+FFFD in their place. A
 * request with one of these values differs from what is read back, so it is
 * sent as an update on every create-or-update.
 *
 * @since 0.1.0
 */
import type {
  ConsumerConfig as NatsConsumerConfig,
  ConsumerInfo as NatsConsumerInfo,
  JetStreamManager as NatsJetStreamManager,
  JetStreamManagerOptions,
  PurgeOpts,
  SequenceInfo as NatsSequenceInfo,
  StreamInfo as NatsStreamInfo
} from "@nats-io/jetstream"
import { jetstreamManager } from "@nats-io/jetstream"
import type { MsgHdrs } from "@nats-io/nats-core"
import { Context, Duration, Effect, Layer, Option, Schema, Stream } from "effect"
import type { JsContext } from "../internal/jsErrors.ts"
import { jsFromUnknown } from "../internal/jsErrors.ts"
import * as ConsumerConfig from "../schemas/ConsumerConfig.ts"
import * as E from "../schemas/NatsError.ts"
import * as StreamConfig from "../schemas/StreamConfig.ts"
import { NatsClient } from "./NatsClient.ts"

// -----------------------------------------------------------------------------
// Models
// -----------------------------------------------------------------------------

/**
 * A stream's state: message and byte counts, first and last sequence and
 * time, and the number of consumers.
 *
 * @category models
 * @since 0.1.0
 */
export interface StreamState {
  readonly messages: number
  readonly bytes: number
  readonly firstSeq: number
  readonly firstTime: Date
  readonly lastSeq: number
  readonly lastTime: Date
  readonly consumerCount: number
  /** Messages deleted inside the first..last range. */
  readonly numDeleted: number
  /** Distinct subjects, when the server reports it. */
  readonly numSubjects: number | undefined
}

/**
 * What the server reports about a stream: its full configuration (server
 * defaults filled in), when it was created, and its state.
 *
 * @category models
 * @since 0.1.0
 */
export interface StreamInfo {
  readonly config: StreamConfig.StreamConfig
  readonly created: Date
  readonly state: StreamState
}

/**
 * A consumer position: the consumer and stream sequences, and when the
 * consumer was last active there (if it was).
 *
 * @category models
 * @since 0.1.0
 */
export interface SequenceInfo {
  readonly consumerSeq: number
  readonly streamSeq: number
  readonly lastActive: Date | undefined
}

/**
 * What the server reports about a consumer.
 *
 * @category models
 * @since 0.1.0
 */
export interface ConsumerInfo {
  readonly stream: string
  readonly name: string
  readonly created: Date
  /** The full configuration (server defaults filled in). */
  readonly config: ConsumerConfig.ConsumerConfig
  /** Last delivered position. */
  readonly delivered: SequenceInfo
  /** Everything up to this position is acknowledged. */
  readonly ackFloor: SequenceInfo
  /** Messages in the stream not yet delivered to this consumer. */
  readonly numPending: number
  /** Delivered, not yet acknowledged. */
  readonly numAckPending: number
  readonly numRedelivered: number
  /** Pull requests waiting at the server. */
  readonly numWaiting: number
  readonly pushBound: boolean
}

/**
 * Options of `purgeStream`. Without options the whole stream is purged.
 * `subject` restricts the purge to one subject (or pattern); `keep` keeps
 * that many newest messages; `upToSequence` purges the messages below that
 * sequence (exclusive). `keep` and `upToSequence` exclude each other.
 *
 * @category models
 * @since 0.1.0
 */
export interface PurgeOptions {
  readonly subject?: string | undefined
  readonly keep?: number | undefined
  readonly upToSequence?: number | undefined
}

/**
 * Which stored message `getMessage` reads: by stream sequence, or the last
 * one on a subject.
 *
 * @category models
 * @since 0.1.0
 */
export type MessageQuery = { readonly seq: number } | { readonly lastBySubject: string }

/**
 * A message read directly from a stream.
 *
 * @category models
 * @since 0.1.0
 */
export interface StoredMessage {
  readonly subject: string
  readonly seq: number
  readonly time: Date
  readonly data: Uint8Array
  readonly headers: MsgHdrs | undefined
}

/**
 * Options for the underlying nats.js JetStream manager.
 *
 * @category models
 * @since 0.1.0
 */
export interface JetStreamManagerMakeOptions {
  /** JetStream domain (for leaf nodes / hubs). */
  readonly domain?: string | undefined
  /** JetStream API prefix (default `$JS.API`); excludes `domain`. */
  readonly apiPrefix?: string | undefined
  /** Timeout of each JetStream API request (default 5 seconds). */
  readonly timeout?: Duration.Input | undefined
}

/**
 * The JetStream management service.
 *
 * @category models
 * @since 0.1.0
 */
export interface JetStreamManagerShape {
  /** The raw nats.js JetStream manager (escape hatch). */
  readonly manager: NatsJetStreamManager
  /**
   * Create the stream, or update it to the requested configuration. Sends
   * nothing when every requested field already has the requested value.
   * Fails with `JetStreamApi` (with `field`) when the server refuses a change.
   */
  readonly createOrUpdateStream: (config: StreamConfig.StreamConfig) => Effect.Effect<StreamInfo, E.NatsError>
  /** The stream's info; `StreamNotFound` when there is none. */
  readonly streamInfo: (name: string) => Effect.Effect<StreamInfo, E.NatsError>
  /** Every stream (or those capturing `subject`). */
  readonly listStreams: (options?: { readonly subject?: string | undefined }) => Stream.Stream<StreamInfo, E.NatsError>
  /** Purge messages; returns how many were purged. */
  readonly purgeStream: (name: string, options?: PurgeOptions) => Effect.Effect<number, E.NatsError>
  /** Delete the stream and its consumers. */
  readonly deleteStream: (name: string) => Effect.Effect<void, E.NatsError>
  /** Read one stored message; `None` when there is no such message. */
  readonly getMessage: (stream: string, query: MessageQuery) => Effect.Effect<Option.Option<StoredMessage>, E.NatsError>
  /**
   * Create the durable consumer (`durable` is required), or update it to the
   * requested configuration. Sends nothing when every requested field
   * already has the requested value. Fails with `JetStreamApi` (with
   * `field`) when the server refuses a change.
   */
  readonly createOrUpdateConsumer: (
    stream: string,
    config: ConsumerConfig.ConsumerConfig
  ) => Effect.Effect<ConsumerInfo, E.NatsError>
  /**
   * Create a consumer: ephemeral without `durable` (the server names it).
   * With a `durable` that already exists it fails with `JetStreamApi`
   * (`errCode` 10148, `field` `durable`) rather than changing it.
   */
  readonly addConsumer: (
    stream: string,
    config: ConsumerConfig.ConsumerConfig
  ) => Effect.Effect<ConsumerInfo, E.NatsError>
  /** The consumer's info; `ConsumerNotFound` (or `StreamNotFound`) when there is none. */
  readonly consumerInfo: (stream: string, name: string) => Effect.Effect<ConsumerInfo, E.NatsError>
  /** Every consumer of the stream. */
  readonly listConsumers: (stream: string) => Stream.Stream<ConsumerInfo, E.NatsError>
  /** Delete the consumer. */
  readonly deleteConsumer: (stream: string, name: string) => Effect.Effect<void, E.NatsError>
}

// -----------------------------------------------------------------------------
// Conversions
// -----------------------------------------------------------------------------

const dateOf = (s: string | undefined): Date | undefined => {
  if (s === undefined) return undefined
  const d = new Date(s)
  return Number.isNaN(d.getTime()) ? undefined : d
}

const dateOrEpoch = (s: string | undefined): Date => dateOf(s) ?? new Date(0)

/**
 * The typed form of a stream info read from the server.
 *
 * @category conversions
 * @since 0.1.0
 */
export const streamInfoFromNats = (info: NatsStreamInfo): StreamInfo => ({
  config: StreamConfig.fromNats(info.config),
  created: dateOrEpoch(info.created),
  state: {
    messages: info.state.messages,
    bytes: info.state.bytes,
    firstSeq: info.state.first_seq,
    firstTime: dateOrEpoch(info.state.first_ts),
    lastSeq: info.state.last_seq,
    lastTime: dateOrEpoch(info.state.last_ts),
    consumerCount: info.state.consumer_count,
    numDeleted: info.state.num_deleted ?? 0,
    numSubjects: info.state.num_subjects
  }
})

/**
 * The typed form of a consumer configuration read from the server
 * (`ConsumerConfig.fromNats`): fields the server leaves out are left out,
 * except booleans (`false`); an unknown `ackPolicy` reads back as `explicit`.
 *
 * @category conversions
 * @since 0.1.0
 */
export const consumerConfigFromNats = (config: NatsConsumerConfig): ConsumerConfig.ConsumerConfig =>
  ConsumerConfig.fromNats(config)

const sequenceFromNats = (s: NatsSequenceInfo | undefined): SequenceInfo => {
  // nats-server reports `last_active` as an RFC 3339 time (nats.js types it as nanos).
  const lastActive: unknown = s?.last_active
  return {
    consumerSeq: s?.consumer_seq ?? 0,
    streamSeq: s?.stream_seq ?? 0,
    lastActive: typeof lastActive === "string" ? dateOf(lastActive) : undefined
  }
}

/**
 * The typed form of a consumer info read from the server.
 *
 * @category conversions
 * @since 0.1.0
 */
export const consumerInfoFromNats = (info: NatsConsumerInfo): ConsumerInfo => ({
  stream: info.stream_name,
  name: info.name,
  created: dateOrEpoch(info.created),
  config: consumerConfigFromNats(info.config),
  delivered: sequenceFromNats(info.delivered),
  ackFloor: sequenceFromNats(info.ack_floor),
  numPending: info.num_pending,
  numAckPending: info.num_ack_pending,
  numRedelivered: info.num_redelivered,
  numWaiting: info.num_waiting,
  pushBound: info.push_bound ?? false
})

// -----------------------------------------------------------------------------
// Diffing
// -----------------------------------------------------------------------------

// Change detection is derived from the configuration schemas: `StreamConfig.diff` and
// `ConsumerConfig.diff` name the requested fields whose value differs from the current one.

/** Fields nats-server 2.9.10 refuses to change on update. */
const immutableStreamFields: ReadonlyArray<string> = ["name", "retention", "storage", "maxConsumers"]
const immutableConsumerFields: ReadonlyArray<string> = [
  "durable",
  "ackPolicy",
  "deliverPolicy",
  "replayPolicy",
  "maxWaiting",
  "flowControl",
  "idleHeartbeat"
]

/** Words of a server error message that name a field. */
const streamFieldWords: ReadonlyArray<readonly [string, RegExp]> = [
  ["discardNewPerSubject", /discard new per subject/i],
  ["retention", /retention/i],
  ["storage", /storage/i],
  ["maxConsumers", /max ?consumers/i],
  ["replicas", /replica/i],
  ["duplicateWindow", /duplicates? window/i],
  ["maxAge", /max ?age/i],
  ["maxMsgsPerSubject", /per ?subject/i],
  ["maxMsgSize", /max ?msg ?size|message size/i],
  ["subjects", /subject/i],
  ["maxBytes", /max ?bytes/i],
  ["maxMsgs", /max ?msgs|max messages/i],
  ["discard", /discard/i],
  ["allowDirect", /direct/i],
  ["allowRollup", /roll-?ups?/i],
  ["denyDelete", /deny ?delete/i],
  ["denyPurge", /deny ?purge/i],
  ["name", /name/i]
]
const consumerFieldWords: ReadonlyArray<readonly [string, RegExp]> = [
  ["ackPolicy", /ack policy/i],
  ["deliverPolicy", /deliver policy|start seq|start time/i],
  ["replayPolicy", /replay policy/i],
  ["maxWaiting", /max ?waiting/i],
  ["maxAckPending", /max ?ack ?pending/i],
  ["maxDeliver", /max ?deliver/i],
  ["backoff", /backoff/i],
  ["ackWait", /ack ?wait/i],
  ["filterSubject", /filter/i],
  ["replicas", /replica/i],
  ["memoryStorage", /storage|memory/i],
  ["headersOnly", /headers/i],
  ["maxBatch", /batch/i],
  ["maxExpires", /expires/i],
  ["inactiveThreshold", /inactive/i],
  ["deliverSubject", /deliver ?subject/i],
  ["deliverGroup", /deliver ?group|queue/i],
  ["flowControl", /flow ?control/i],
  ["idleHeartbeat", /heart ?beat/i],
  ["durable", /durable|name/i]
]

/**
 * The field a refused request is about: among the candidate fields (those
 * that differ, or those requested on create), the one the server's message
 * mentions; else a known immutable one; else the only candidate.
 */
const offendingField = (
  candidates: ReadonlyArray<string>,
  message: string,
  words: ReadonlyArray<readonly [string, RegExp]>,
  immutable: ReadonlyArray<string>
): string | undefined => {
  const mentioned = words.find(([field, re]) => candidates.includes(field) && re.test(message))
  if (mentioned !== undefined) return mentioned[0]
  const fixed = candidates.find((field) => immutable.includes(field))
  if (fixed !== undefined) return fixed
  return candidates.length === 1 ? candidates[0] : undefined
}

/** Adds `field` to a `JetStreamApi` reason. */
const withField = (error: E.NatsError, field: string | undefined): E.NatsError => {
  const r = error.reason
  if (field === undefined || r._tag !== "JetStreamApi" || r.field !== undefined) return error
  return new E.NatsError({
    reason: new E.JetStreamApi({
      ...(r.message === undefined ? {} : { message: `${r.message} (field: ${field})` }),
      ...(r.operation === undefined ? {} : { operation: r.operation }),
      ...(r.subject === undefined ? {} : { subject: r.subject }),
      ...(r.cause === undefined ? {} : { cause: r.cause }),
      code: r.code,
      errCode: r.errCode,
      field
    })
  })
}

// -----------------------------------------------------------------------------
// Validation
// -----------------------------------------------------------------------------

const invalid = (operation: string, message: string, cause?: unknown): E.NatsError =>
  new E.NatsError({
    reason: new E.InvalidArgument({ operation, message, ...(cause === undefined ? {} : { cause }) })
  })

const decodeWith = <S extends Schema.Codec<unknown, unknown, never, never>>(schema: S, what: string) => {
  const decode = Schema.decodeUnknownEffect(schema)
  return (operation: string, input: unknown): Effect.Effect<S["Type"], E.NatsError> =>
    decode(input, { errors: "all" }).pipe(
      Effect.mapError((error) => invalid(operation, `invalid ${what}: ${error.message}`, error))
    )
}

// The schemas' Encoded side is the wire shape: a user's typed configuration is validated against their type side.
const decodeStreamConfig = decodeWith(Schema.toType(StreamConfig.StreamConfig), "stream configuration")
const decodeConsumerConfig = decodeWith(Schema.toType(ConsumerConfig.ConsumerConfig), "consumer configuration")
const decodeStreamName = decodeWith(StreamConfig.Name, "stream name")
const decodeConsumerName = decodeWith(StreamConfig.Name, "consumer name")

const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))
const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
const decodePurgeOptions = decodeWith(
  Schema.Struct({
    subject: Schema.optional(Schema.String.check(Schema.isMinLength(1))),
    keep: Schema.optional(NonNegativeInt),
    upToSequence: Schema.optional(PositiveInt)
  }),
  "purge options"
)
const decodeMessageQuery = decodeWith(
  Schema.Union([
    Schema.Struct({ seq: PositiveInt }),
    Schema.Struct({ lastBySubject: Schema.String.check(Schema.isMinLength(1)) })
  ]),
  "message query"
)

// -----------------------------------------------------------------------------
// Constructor
// -----------------------------------------------------------------------------

/**
 * Builds the service from the `NatsClient` connection. Checks that JetStream
 * is available: fails with reason `JetStreamNotEnabled` when it is not.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make: (
  options?: JetStreamManagerMakeOptions
) => Effect.Effect<JetStreamManagerShape, E.NatsError, NatsClient> = Effect.fn("JetStreamManager.make")(
  function*(options?: JetStreamManagerMakeOptions) {
    const client = yield* NatsClient
    const jsOptions: JetStreamManagerOptions = {
      ...(options?.domain === undefined ? {} : { domain: options.domain }),
      ...(options?.apiPrefix === undefined ? {} : { apiPrefix: options.apiPrefix }),
      ...(options?.timeout === undefined
        ? {}
        : { timeout: Duration.toMillis(Duration.fromInputUnsafe(options.timeout)) })
    }
    const jsm = yield* Effect.tryPromise({
      try: () => jetstreamManager(client.connection, jsOptions),
      catch: (cause) => jsFromUnknown(cause, { operation: "JetStreamManager.make" })
    })
    return makeWith(jsm)
  }
)

/** JetStream API error codes: stream name already in use; consumer already exists (2.10+ code, reused here). */
const StreamNameInUse = 10058
const ConsumerAlreadyExists = 10148

const call = <A>(ctx: JsContext, f: () => Promise<A>): Effect.Effect<A, E.NatsError> =>
  Effect.tryPromise({ try: f, catch: (cause) => jsFromUnknown(cause, ctx) })

const isReason = (error: E.NatsError, tag: E.NatsErrorReason["_tag"]): boolean => error.reason._tag === tag

/**
 * The service over an existing nats.js JetStream manager.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeWith = (jsm: NatsJetStreamManager): JetStreamManagerShape => {
  // --- streams ---------------------------------------------------------------

  const rawStreamInfo = (operation: string, name: string) =>
    call({ operation, stream: name }, () => jsm.streams.info(name))

  const streamInfo = Effect.fn("JetStreamManager.streamInfo")(function*(name: string) {
    const operation = "JetStreamManager.streamInfo"
    yield* decodeStreamName(operation, name)
    return streamInfoFromNats(yield* rawStreamInfo(operation, name))
  })

  const updateStream = (
    operation: string,
    config: StreamConfig.StreamConfig,
    current: NatsStreamInfo
  ): Effect.Effect<StreamInfo, E.NatsError> => {
    const currentConfig = StreamConfig.fromNats(current.config)
    const changed = StreamConfig.diff(config, currentConfig)
    if (changed.length === 0) return Effect.succeed(streamInfoFromNats(current))
    return call({ operation, stream: config.name }, () => jsm.streams.update(config.name, StreamConfig.toNats(config)))
      .pipe(
        Effect.map(streamInfoFromNats),
        Effect.mapError((error) =>
          withField(
            error,
            offendingField(changed, error.reason.message ?? "", streamFieldWords, immutableStreamFields)
          )
        )
      )
  }

  const createOrUpdateStream = Effect.fn("JetStreamManager.createOrUpdateStream")(
    function*(input: StreamConfig.StreamConfig) {
      const operation = "JetStreamManager.createOrUpdateStream"
      const config = yield* decodeStreamConfig(operation, input)
      const existing = yield* rawStreamInfo(operation, config.name).pipe(
        Effect.map(Option.some),
        Effect.catchIf((error) => isReason(error, "StreamNotFound"), () => Effect.succeedNone)
      )
      if (Option.isSome(existing)) return yield* updateStream(operation, config, existing.value)
      return yield* call({ operation, stream: config.name }, () => jsm.streams.add(StreamConfig.toNats(config))).pipe(
        Effect.map(streamInfoFromNats),
        Effect.catchIf(
          // Created concurrently by someone else: update it instead.
          (error) => error.reason._tag === "JetStreamApi" && error.reason.errCode === StreamNameInUse,
          () => Effect.flatMap(rawStreamInfo(operation, config.name), (info) => updateStream(operation, config, info))
        ),
        Effect.mapError((error) =>
          withField(
            error,
            offendingField(
              Object.keys(config),
              error.reason.message ?? "",
              streamFieldWords,
              []
            )
          )
        )
      )
    }
  )

  const listStreams = (options?: { readonly subject?: string | undefined }): Stream.Stream<StreamInfo, E.NatsError> =>
    Stream.suspend(() =>
      Stream.fromAsyncIterable(
        jsm.streams.list(options?.subject),
        (cause) => jsFromUnknown(cause, { operation: "JetStreamManager.listStreams", subject: options?.subject })
      )
    ).pipe(Stream.map(streamInfoFromNats))

  const purgeStream = Effect.fn("JetStreamManager.purgeStream")(function*(name: string, options?: PurgeOptions) {
    const operation = "JetStreamManager.purgeStream"
    yield* decodeStreamName(operation, name)
    const o = yield* decodePurgeOptions(operation, options ?? {})
    if (o.keep !== undefined && o.upToSequence !== undefined) {
      return yield* Effect.fail(invalid(operation, "purge options: keep and upToSequence exclude each other"))
    }
    const filter = o.subject === undefined ? {} : { filter: o.subject }
    const opts: PurgeOpts | undefined = o.keep !== undefined
      ? { ...filter, keep: o.keep }
      : o.upToSequence !== undefined
      ? { ...filter, seq: o.upToSequence }
      : o.subject !== undefined
      ? { filter: o.subject }
      : undefined
    const response = yield* call({ operation, stream: name, subject: o.subject }, () => jsm.streams.purge(name, opts))
    return response.purged
  })

  const deleteStream = Effect.fn("JetStreamManager.deleteStream")(function*(name: string) {
    const operation = "JetStreamManager.deleteStream"
    yield* decodeStreamName(operation, name)
    yield* call({ operation, stream: name }, () => jsm.streams.delete(name))
  })

  const getMessage = Effect.fn("JetStreamManager.getMessage")(function*(stream: string, query: MessageQuery) {
    const operation = "JetStreamManager.getMessage"
    yield* decodeStreamName(operation, stream)
    const q = yield* decodeMessageQuery(operation, query)
    const msg = yield* call(
      { operation, stream, subject: "lastBySubject" in q ? q.lastBySubject : undefined },
      () => jsm.streams.getMessage(stream, "seq" in q ? { seq: q.seq } : { last_by_subj: q.lastBySubject })
    )
    if (msg === null) return Option.none<StoredMessage>()
    return Option.some<StoredMessage>({
      subject: msg.subject,
      seq: msg.seq,
      time: msg.time,
      data: msg.data,
      headers: msg.header.keys().length === 0 ? undefined : msg.header
    })
  })

  // --- consumers -------------------------------------------------------------

  const rawConsumerInfo = (operation: string, stream: string, name: string) =>
    call({ operation, stream, consumer: name }, () => jsm.consumers.info(stream, name))

  const consumerInfo = Effect.fn("JetStreamManager.consumerInfo")(function*(stream: string, name: string) {
    const operation = "JetStreamManager.consumerInfo"
    yield* decodeStreamName(operation, stream)
    yield* decodeConsumerName(operation, name)
    return consumerInfoFromNats(yield* rawConsumerInfo(operation, stream, name))
  })

  /** The wire config; an unset `ackPolicy` is left out on update so the current one is kept. */
  const consumerToNats = (config: ConsumerConfig.ConsumerConfig, update: boolean): Partial<NatsConsumerConfig> => {
    const wire = ConsumerConfig.toNats(config)
    if (update && config.ackPolicy === undefined) {
      const { ack_policy: _, ...rest } = wire
      return rest
    }
    return wire
  }

  const addConsumerRaw = (operation: string, stream: string, config: ConsumerConfig.ConsumerConfig) =>
    call(
      { operation, stream, consumer: config.durable },
      () => jsm.consumers.add(stream, consumerToNats(config, false))
    )
      .pipe(
        Effect.map(consumerInfoFromNats),
        Effect.mapError((error) =>
          withField(error, offendingField(Object.keys(config), error.reason.message ?? "", consumerFieldWords, []))
        )
      )

  const createOrUpdateConsumer = Effect.fn("JetStreamManager.createOrUpdateConsumer")(
    function*(stream: string, input: ConsumerConfig.ConsumerConfig) {
      const operation = "JetStreamManager.createOrUpdateConsumer"
      yield* decodeStreamName(operation, stream)
      const config = yield* decodeConsumerConfig(operation, input)
      const durable = config.durable
      if (durable === undefined) {
        return yield* Effect.fail(
          invalid(operation, "createOrUpdateConsumer needs a durable name; use addConsumer for an ephemeral consumer")
        )
      }
      const existing = yield* rawConsumerInfo(operation, stream, durable).pipe(
        Effect.map(Option.some),
        Effect.catchIf((error) => isReason(error, "ConsumerNotFound"), () => Effect.succeedNone)
      )
      // nats-server 2.9 ignores the create `action`: adding over an existing durable updates it,
      // so the existence check above is what tells create from update.
      if (Option.isNone(existing)) return yield* addConsumerRaw(operation, stream, config)
      const current = existing.value
      const currentConfig = consumerConfigFromNats(current.config)
      // With a backoff, the server sets ackWait to the first backoff step and ignores the requested one.
      const backoff = config.backoff ?? currentConfig.backoff ?? []
      const changed = ConsumerConfig.diff(config, currentConfig).filter((field) =>
        !(field === "ackWait" && backoff.length > 0)
      )
      if (changed.length === 0) return consumerInfoFromNats(current)
      return yield* call(
        { operation, stream, consumer: durable },
        () => jsm.consumers.update(stream, durable, consumerToNats(config, true))
      ).pipe(
        Effect.map(consumerInfoFromNats),
        Effect.mapError((error) =>
          withField(
            error,
            offendingField(changed, error.reason.message ?? "", consumerFieldWords, immutableConsumerFields)
          )
        )
      )
    }
  )

  const addConsumer = Effect.fn("JetStreamManager.addConsumer")(
    function*(stream: string, input: ConsumerConfig.ConsumerConfig) {
      const operation = "JetStreamManager.addConsumer"
      yield* decodeStreamName(operation, stream)
      const config = yield* decodeConsumerConfig(operation, input)
      const durable = config.durable
      if (durable !== undefined) {
        const exists = yield* rawConsumerInfo(operation, stream, durable).pipe(
          Effect.as(true),
          Effect.catchIf((error) => isReason(error, "ConsumerNotFound"), () => Effect.succeed(false))
        )
        if (exists) {
          return yield* Effect.fail(
            new E.NatsError({
              reason: new E.JetStreamApi({
                operation,
                message: `consumer ${durable} already exists on stream ${stream}`,
                code: 400,
                errCode: ConsumerAlreadyExists,
                field: "durable"
              })
            })
          )
        }
      }
      return yield* addConsumerRaw(operation, stream, config)
    }
  )

  const listConsumers = (stream: string): Stream.Stream<ConsumerInfo, E.NatsError> =>
    Stream.unwrap(
      Effect.map(
        decodeStreamName("JetStreamManager.listConsumers", stream),
        () =>
          Stream.fromAsyncIterable(
            jsm.consumers.list(stream),
            (cause) => jsFromUnknown(cause, { operation: "JetStreamManager.listConsumers", stream })
          )
      )
    ).pipe(Stream.map(consumerInfoFromNats))

  const deleteConsumer = Effect.fn("JetStreamManager.deleteConsumer")(function*(stream: string, name: string) {
    const operation = "JetStreamManager.deleteConsumer"
    yield* decodeStreamName(operation, stream)
    yield* decodeConsumerName(operation, name)
    yield* call({ operation, stream, consumer: name }, () => jsm.consumers.delete(stream, name))
  })

  return {
    manager: jsm,
    createOrUpdateStream,
    streamInfo,
    listStreams,
    purgeStream,
    deleteStream,
    getMessage,
    createOrUpdateConsumer,
    addConsumer,
    consumerInfo,
    listConsumers,
    deleteConsumer
  }
}

/**
 * The JetStream management service. Its layer needs a `NatsClient` and fails
 * with reason `JetStreamNotEnabled` when the server has no JetStream.
 *
 * @category services
 * @since 0.1.0
 */
export class JetStreamManager
  extends Context.Service<JetStreamManager, JetStreamManagerShape>()("effect-nats/JetStreamManager")
{
  /**
   * The service with default options, on the `NatsClient` connection.
   *
   * @since 0.1.0
   */
  static readonly layer: Layer.Layer<JetStreamManager, E.NatsError, NatsClient> = Layer.effect(
    JetStreamManager,
    make()
  )

  /**
   * The service with options (domain, API prefix, request timeout).
   *
   * @since 0.1.0
   */
  static readonly layerWith = (
    options: JetStreamManagerMakeOptions
  ): Layer.Layer<JetStreamManager, E.NatsError, NatsClient> => Layer.effect(JetStreamManager, make(options))
}
