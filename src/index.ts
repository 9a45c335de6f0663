/**
 * effect-nats: NATS messaging for Effect 4.
 *
 * @since 0.1.0
 */

/**
 * Authentication kinds (user/password, token, NKey, creds) with `Redacted` secrets.
 *
 * @since 0.1.0
 */
export * as Auth from "./schemas/Auth.ts"

/**
 * Payload codecs: JSON through Schema, string, bytes, custom.
 *
 * @since 0.1.0
 */
export * as Codec from "./schemas/Codec.ts"

/**
 * Connection lifecycle events.
 *
 * @since 0.1.0
 */
export * as ConnectionEvent from "./schemas/ConnectionEvent.ts"

/**
 * Message headers: what a caller may give, the conversion to nats.js headers, the service error headers.
 *
 * @since 0.1.0
 */
export * as Headers from "./schemas/Headers.ts"

/**
 * TLS settings of a connection: CA, client certificate (mutual TLS), minimum version, server name.
 *
 * @since 0.1.0
 */
export * as Tls from "./schemas/Tls.ts"

/**
 * Typed JetStream stream configuration.
 *
 * @since 0.1.0
 */
export * as StreamConfig from "./schemas/StreamConfig.ts"

/**
 * Typed JetStream consumer configuration.
 *
 * @since 0.1.0
 */
export * as ConsumerConfig from "./schemas/ConsumerConfig.ts"

/**
 * JetStream publish: acked, deduplicated, with expectations; pipelined publishAll / sink.
 *
 * @since 0.1.0
 */
export * as JetStream from "./services/JetStream.ts"

/**
 * JetStream administration: streams and consumers created or updated from typed config.
 *
 * @since 0.1.0
 */
export * as JetStreamManager from "./services/JetStreamManager.ts"

/**
 * JetStream consumers as handles and Layers: consume, fetch, next, ordered replay, status, recovery.
 *
 * @since 0.1.0
 */
export * as Consumer from "./services/Consumer.ts"

/**
 * A JetStream message with its decoded value, metadata and ack operations.
 *
 * @since 0.1.0
 */
export * as JsEnvelope from "./services/JsEnvelope.ts"

/**
 * What a subscription does when its buffer is full.
 *
 * @since 0.1.0
 */
export * as Overflow from "./schemas/Overflow.ts"

/**
 * Ready-made layers: a client on a throwaway embedded server, or on `NATS_URL`. Starts processes: for
 * tests and local development (also at `effect-nats/LocalNats`).
 *
 * @since 0.1.0
 */
export * as LocalNats from "./layers/LocalNats.ts"

/**
 * The connection service: publish, subscribe, request, serve.
 *
 * @since 0.1.0
 */
export * as NatsClient from "./services/NatsClient.ts"

/**
 * The error family with a tagged reason.
 *
 * @since 0.1.0
 */
export * as NatsError from "./schemas/NatsError.ts"

/**
 * A real, throwaway nats-server (single node or 3-node cluster) as a Layer. Starts processes: for tests,
 * examples and benchmarks (also at `effect-nats/NatsServer`; every module has its own subpath, so a
 * production bundle can leave the embedded server out).
 *
 * @since 0.1.0
 */
export * as NatsServer from "./layers/NatsServer.ts"

/**
 * JetStream Key-Value buckets, typed: values through a Codec, compare-and-set by revision, keys and history as Streams.
 *
 * @since 0.1.0
 */
export * as KeyValue from "./services/KeyValue.ts"

/**
 * JetStream Object Stores, typed: objects put from and read as Streams of bytes (bounded memory), digests checked.
 *
 * @since 0.1.0
 */
export * as ObjectStore from "./services/ObjectStore.ts"

/**
 * Effect's `KeyValueStore` (`effect/persistence`) on a NATS Key-Value bucket.
 *
 * @since 0.1.0
 */
export * as NatsKeyValueStore from "./layers/NatsKeyValueStore.ts"

/**
 * Effect's `PersistedQueueStore` (`effect/persistence`) on JetStream: `PersistedQueue` and `DurableQueue` on NATS.
 *
 * @since 0.1.0
 */
export * as NatsPersistedQueue from "./layers/NatsPersistedQueue.ts"

/**
 * Effect RPC over NATS: `RpcServer` and `RpcClient` protocols, instances in a queue group, heartbeats, graceful stop.
 *
 * @since 0.1.0
 */
export * as NatsRpc from "./layers/NatsRpc.ts"

/**
 * Runs a typed handler over a JetStream consumer: bounded concurrency, retry by Schedule, dead-letter, graceful shutdown.
 *
 * @since 0.1.0
 */
export * as Processor from "./services/Processor.ts"

/**
 * Typed request/reply endpoints.
 *
 * @since 0.1.0
 */
export * as Rpc from "./services/Rpc.ts"

/**
 * NATS services ("micro"): typed endpoints in queue groups, discovery on `$SRV.*`, exact stats, graceful stop.
 *
 * @since 0.1.0
 */
export * as Service from "./services/Service.ts"

/**
 * Discovery of NATS services: ping, info and stats of every instance as Streams.
 *
 * @since 0.1.0
 */
export * as ServiceClient from "./services/ServiceClient.ts"

/**
 * The discovery messages of NATS services (ping, info, stats), as Schemas.
 *
 * @since 0.1.0
 */
export * as ServiceInfo from "./schemas/ServiceInfo.ts"

/**
 * Subjects, patterns, the wildcard matcher and subject templates.
 *
 * @since 0.1.0
 */
export * as Subject from "./schemas/Subject.ts"

/**
 * Subjects paired with payload codecs: typed publish and subscribe.
 *
 * @since 0.1.0
 */
export * as TypedSubject from "./services/TypedSubject.ts"

/**
 * Trace context across the broker: the producer's span read from a message, and its processing in a child span.
 *
 * @since 0.1.0
 */
export * as Tracing from "./services/Tracing.ts"

/**
 * The nats.js types that appear in effect-nats signatures (raw connections,
 * messages, headers, consumers, infos and wire configurations), so that a
 * program needs no nats.js import of its own to name them.
 *
 * @since 0.1.0
 */
export type { ConnectionOptions, Msg, MsgHdrs, NatsConnection, Payload } from "@nats-io/nats-core"

/**
 * The nats.js JetStream types that appear in effect-nats signatures, the
 * ambiguous ones prefixed with `Nats`.
 *
 * @since 0.1.0
 */
export type {
  Consumer as NatsConsumer,
  ConsumerConfig as NatsConsumerConfig,
  ConsumerInfo as NatsConsumerInfo,
  JetStreamClient,
  JetStreamManager as NatsJetStreamManager,
  JsMsg,
  PushConsumer,
  StreamConfig as NatsStreamConfig,
  StreamInfo as NatsStreamInfo
} from "@nats-io/jetstream"
