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
  JetStreamClient,
  JetStreamManager as NatsJetStreamManager,
  JetStreamManagerOptions,
  StreamInfo as NatsStreamInfo
} from "@nats-io/jetstream"
import { jetstreamManager } from "@nats-io/jetstream"
import type { MsgHdrs } from "@nats-io/nats-core"
import type { Option, Stream } from "effect"
import { Context, Duration, Effect, Layer } from "effect"
import { jsFromUnknown } from "../internal/jsErrors.ts"
import * as Common from "../internal/jsmCommon.ts"
import * as Consumers from "../internal/jsmConsumers.ts"
import * as Info from "../internal/jsmInfo.ts"
import * as Streams from "../internal/jsmStreams.ts"
import * as Validation from "../internal/validation.ts"
import * as ConsumerConfig from "../schemas/ConsumerConfig.ts"
import type * as NatsError from "../schemas/NatsError.ts"
import type * as StreamConfig from "../schemas/StreamConfig.ts"
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
 * A replica of a clustered stream or consumer, as its leader sees it.
 *
 * @category models
 * @since 0.1.0
 */
export interface Replica {
  /** The server's name. */
  readonly name: string
  /** Whether it is caught up with the leader. */
  readonly current: boolean
  /** Whether the group considers it offline. */
  readonly offline: boolean
  /** How long ago the leader last heard from it. */
  readonly active: Duration.Duration
  /** Operations it is behind the leader. */
  readonly lag: number
}

/**
 * Where a stream or consumer lives in a cluster: its leader (absent while
 * the replicas elect one) and the other replicas with their lag.
 *
 * @category models
 * @since 0.1.0
 */
export interface ClusterInfo {
  /** The cluster's name. */
  readonly name: string | undefined
  /** The server that leads it now; `undefined` during an election. */
  readonly leader: string | undefined
  /** The replicas other than the leader. */
  readonly replicas: ReadonlyArray<Replica>
}

/**
 * What the server reports about a stream: its full configuration (server
 * defaults filled in), when it was created, its state, and (on a cluster, or
 * a server with JetStream clustering) where it lives.
 *
 * @category models
 * @since 0.1.0
 */
export interface StreamInfo {
  readonly config: StreamConfig.StreamConfig
  readonly created: Date
  readonly state: StreamState
  readonly cluster: ClusterInfo | undefined
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
  /** Its leader and replicas on a cluster. */
  readonly cluster: ClusterInfo | undefined
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
   * The raw nats.js JetStream client with the manager's options (domain, API
   * prefix, timeout): consumers are read through it.
   */
  readonly client: JetStreamClient
  /**
   * Create the stream, or update it to the requested configuration. Sends
   * nothing when every requested field already has the requested value.
   * Fails with `JetStreamApi` (with `field`) when the server refuses a change.
   */
  readonly createOrUpdateStream: (config: StreamConfig.StreamConfig) => Effect.Effect<StreamInfo, NatsError.NatsError>
  /** The stream's info; `StreamNotFound` when there is none. */
  readonly streamInfo: (name: string) => Effect.Effect<StreamInfo, NatsError.NatsError>
  /** Every stream (or those capturing `subject`). */
  readonly listStreams: (
    options?: { readonly subject?: string | undefined }
  ) => Stream.Stream<StreamInfo, NatsError.NatsError>
  /** The name of the stream that captures `subject`, if one does. */
  readonly streamNameBySubject: (subject: string) => Effect.Effect<Option.Option<string>, NatsError.NatsError>
  /** Purge messages; returns how many were purged. */
  readonly purgeStream: (name: string, options?: PurgeOptions) => Effect.Effect<number, NatsError.NatsError>
  /** Delete the stream and its consumers. */
  readonly deleteStream: (name: string) => Effect.Effect<void, NatsError.NatsError>
  /** Read one stored message; `None` when there is no such message. */
  readonly getMessage: (
    stream: string,
    query: MessageQuery
  ) => Effect.Effect<Option.Option<StoredMessage>, NatsError.NatsError>
  /**
   * Create the durable consumer (`durable` is required), or update it to the
   * requested configuration. Sends nothing when every requested field
   * already has the requested value. Fails with `JetStreamApi` (with
   * `field`) when the server refuses a change.
   */
  readonly createOrUpdateConsumer: (
    stream: string,
    config: ConsumerConfig.ConsumerConfig
  ) => Effect.Effect<ConsumerInfo, NatsError.NatsError>
  /**
   * Create a consumer: ephemeral without `durable` (the server names it).
   * With a `durable` that already exists it fails with `JetStreamApi`
   * (`errCode` 10148, `field` `durable`) rather than changing it.
   */
  readonly addConsumer: (
    stream: string,
    config: ConsumerConfig.ConsumerConfig
  ) => Effect.Effect<ConsumerInfo, NatsError.NatsError>
  /** The consumer's info; `ConsumerNotFound` (or `StreamNotFound`) when there is none. */
  readonly consumerInfo: (stream: string, name: string) => Effect.Effect<ConsumerInfo, NatsError.NatsError>
  /** Every consumer of the stream. */
  readonly listConsumers: (stream: string) => Stream.Stream<ConsumerInfo, NatsError.NatsError>
  /** Delete the consumer. */
  readonly deleteConsumer: (stream: string, name: string) => Effect.Effect<void, NatsError.NatsError>
}

// -----------------------------------------------------------------------------
// Conversions
// -----------------------------------------------------------------------------

/**
 * The typed form of a stream info read from the server.
 *
 * @category conversions
 * @since 0.1.0
 */
export const streamInfoFromNats: (info: NatsStreamInfo) => StreamInfo = Info.streamInfoFromNats

/**
 * The typed form of a consumer configuration read from the server
 * (`ConsumerConfig.fromNats`): fields the server leaves out are left out,
 * except booleans (`false`); an unknown `ackPolicy` reads back as `explicit`.
 *
 * @category conversions
 * @since 0.1.0
 */
export const consumerConfigFromNats: (config: NatsConsumerConfig) => ConsumerConfig.ConsumerConfig =
  ConsumerConfig.fromNats

/**
 * The typed form of a consumer info read from the server.
 *
 * @category conversions
 * @since 0.1.0
 */
export const consumerInfoFromNats: (info: NatsConsumerInfo) => ConsumerInfo = Info.consumerInfoFromNats

// -----------------------------------------------------------------------------
// Constructors
// -----------------------------------------------------------------------------

/**
 * Builds the service from the `NatsClient` connection. Checks that JetStream
 * is available: fails with reason `JetStreamNotEnabled` when it is not.
 *
 * @example
 * ```ts
 * const jsm = yield* JetStreamManager.make({ timeout: "2 seconds" })
 * yield* jsm.createOrUpdateStream({ name: "ORDERS", subjects: ["orders.>"], maxAge: Duration.days(7) })
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const make: (
  options?: JetStreamManagerMakeOptions
) => Effect.Effect<JetStreamManagerShape, NatsError.NatsError, NatsClient> = Effect.fn("JetStreamManager.make")(
  function*(options?: JetStreamManagerMakeOptions) {
    const client = yield* NatsClient
    const timeout = options?.timeout === undefined ? undefined : yield* Effect.fromResult(
      Validation.duration("JetStreamManager.make", "timeout", options.timeout, 0)
    )
    const jsOptions: JetStreamManagerOptions = {
      ...(options?.domain === undefined ? {} : { domain: options.domain }),
      ...(options?.apiPrefix === undefined ? {} : { apiPrefix: options.apiPrefix }),
      ...(timeout === undefined ? {} : { timeout: Duration.toMillis(timeout) })
    }
    const jsm = yield* Effect.tryPromise({
      try: () => jetstreamManager(client.connection, jsOptions),
      catch: (cause) => jsFromUnknown(cause, { operation: "JetStreamManager.make" })
    })
    // on the client's connection, a refused API request fails at once (PermissionViolation)
    return assemble(jsm, client.core.onPublishRefused)
  }
)

/**
 * The service over an existing nats.js JetStream manager.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeWith = (jsm: NatsJetStreamManager): JetStreamManagerShape => assemble(jsm, undefined)

const assemble = (jsm: NatsJetStreamManager, refusals: Common.Refusals | undefined): JetStreamManagerShape => {
  const call = Common.makeCall(refusals)
  return {
    manager: jsm,
    client: jsm.jetstream(),
    ...Streams.make(jsm, call),
    ...Consumers.make(jsm, call)
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
  static readonly layer: Layer.Layer<JetStreamManager, NatsError.NatsError, NatsClient> = Layer.effect(
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
  ): Layer.Layer<JetStreamManager, NatsError.NatsError, NatsClient> => Layer.effect(JetStreamManager, make(options))
}
