/**
 * The NATS connection as an Effect service: connect on build, drain on
 * release, core publish / subscribe / request / serve as Effects and Streams.
 *
 * @since 0.1.0
 */
import type { ConnectionOptions, Msg, MsgHdrs, NatsConnection, Payload } from "@nats-io/nats-core"
import type { Fiber, Schedule, Scope } from "effect"
import { Config, Context, Deferred, Duration, Effect, Layer, Option, PubSub, Stream } from "effect"
import * as Connection from "../internal/connection.ts"
import * as Core from "../internal/core.ts"
import { fromUnknown } from "../internal/errors.ts"
import * as Metrics from "../internal/metrics.ts"
import * as Publish from "../internal/publish.ts"
import * as Request from "../internal/request.ts"
import * as Serve from "../internal/serve.ts"
import { acquire, subscribeStream } from "../internal/subscription.ts"
import type { BridgeOptions } from "../internal/subscription.ts"
import * as TraceContext from "../internal/traceContext.ts"
import * as Validation from "../internal/validation.ts"
import * as Auth from "../schemas/Auth.ts"
import type { ConnectionEvent } from "../schemas/ConnectionEvent.ts"
import * as Headers from "../schemas/Headers.ts"
import type * as NatsError from "../schemas/NatsError.ts"
import type { Overflow } from "../schemas/Overflow.ts"
import * as Tls from "../schemas/Tls.ts"

export type { Overflow } from "../schemas/Overflow.ts"

/**
 * Headers for a message (see the `Headers` module).
 *
 * @category models
 * @since 0.1.0
 */
export type HeadersInit = Headers.HeadersInit

/**
 * Options of `NatsClient.layer` / `make`.
 *
 * @category models
 * @since 0.1.0
 */
export interface NatsClientOptions {
  /** Server URLs, e.g. `"nats://127.0.0.1:4222"`. Default `nats://127.0.0.1:4222`. */
  readonly servers?: string | ReadonlyArray<string> | undefined
  /** The client name shown in the server's monitoring. */
  readonly name?: string | undefined
  /**
   * How to authenticate. Secrets stay `Redacted`. An Effect (reading a
   * secret store, a file) is run before the first connect and again each
   * time the connection drops, so that reconnects use rotated credentials.
   */
  readonly auth?: Auth.Auth | Effect.Effect<Auth.Auth, NatsError.NatsError> | undefined
  /**
   * TLS: the CA to trust, a client certificate for mutual TLS, the lowest
   * version (default TLS 1.2), the server name (see the `Tls` module).
   * Certificates and keys are checked before anything is dialled.
   */
  readonly tls?: Tls.Tls | undefined
  /** Timeout of one connect attempt. Default 3 seconds. */
  readonly connectAttemptTimeout?: Duration.Input | undefined
  /**
   * Retries of the first connect (only retryable failures such as a refused
   * connection are retried; wrong credentials fail at once). Default: 4 quick
   * exponential retries from 100 ms.
   */
  readonly connectSchedule?: Schedule.Schedule<unknown, NatsError.NatsError> | undefined
  /** Overall limit on the first connect, retries included. Default 15 seconds. */
  readonly connectTimeout?: Duration.Input | undefined
  /**
   * Delays between reconnect attempts after the connection is lost. The
   * schedule's input is the attempt number; when it ends, the connection is
   * closed for good and every user of it fails with `ConnectionClosed`. The
   * first attempt after a disconnect is immediate. Each dial is one attempt
   * (with several servers, one rotation over them is several steps). The
   * schedule must step synchronously (delays, not effects that sleep).
   * Default: exponential from 250 ms capped at 5 s, jittered, for up to 120
   * attempts (about 10 minutes).
   */
  readonly reconnectSchedule?: Schedule.Schedule<unknown, number> | undefined
  /** Bounded time given to draining the connection on release. Default 10 seconds. */
  readonly drainTimeout?: Duration.Input | undefined
  /** Log connection events through Effect's Logger. Default `true`. */
  readonly logEvents?: boolean | undefined
  /**
   * Runs for every connection event, for the connection's whole life (the
   * last is `Closed`, after the release's drain), with the services of the
   * effect that connected: nats.go's `DisconnectErrHandler`,
   * `ReconnectHandler` and `ClosedHandler` in one. Each run is started as its
   * event is emitted; a failure is logged, never fatal. For a consumer that
   * can fall behind, read `events` instead.
   */
  readonly onEvent?: ((event: ConnectionEvent) => Effect.Effect<void, unknown>) | undefined
  /** Ping interval (stale connection detection). nats.js default: 2 minutes. */
  readonly pingInterval?: Duration.Input | undefined
  /** Do not receive the messages this connection publishes. */
  readonly noEcho?: boolean | undefined
  /**
   * Raw nats.js options merged last (escape hatch, e.g. `tls`). Options that
   * this service manages (reconnect, waitOnFirstConnect...) are overridden.
   * effect-nats sets `noAsyncTraces: true` (no stack captured per request);
   * `{ noAsyncTraces: false }` restores nats.js' default.
   */
  readonly connectionOptions?: Partial<ConnectionOptions> | undefined
}

/**
 * Options of `publish`.
 *
 * @category models
 * @since 0.1.0
 */
export interface PublishOptions {
  readonly headers?: HeadersInit | undefined
  readonly reply?: string | undefined
  /**
   * What spans and metrics call this message's destination: a template
   * (`TypedSubject` gives its own, `orders.{id}.created`) or a family of
   * subjects. Default: spans name the subject, metrics count it under its
   * first token and `.>` (`orders.>`).
   */
  readonly destination?: string | undefined
}

/**
 * A message for `publishAll`.
 *
 * @category models
 * @since 0.1.0
 */
export interface OutgoingMessage extends PublishOptions {
  readonly subject: string
  readonly payload?: Payload | undefined
}

/**
 * Options of `publishAll`.
 *
 * @category models
 * @since 0.1.0
 */
export interface PublishAllOptions {
  /**
   * A checkpoint (a flush) after this many messages; the previous checkpoint
   * is awaited then, so at most two batches are unconfirmed. Default 16384.
   */
  readonly flushEvery?: number | undefined
}

/**
 * Options of `subscribe`.
 *
 * @category models
 * @since 0.1.0
 */
export interface SubscribeOptions {
  /** Queue group: each message goes to one member of the group. */
  readonly queue?: string | undefined
  /**
   * Messages buffered between the server and the stream. Default 65536: the
   * client reads the socket in large chunks, so a burst of several thousand
   * small messages can arrive before the consumer runs.
   */
  readonly bufferSize?: number | undefined
  /** Payload bytes buffered, at most. Default 64 MiB. */
  readonly maxBytes?: number | undefined
  /** What happens when the buffer is full (by count or bytes). Default `"fail"`. */
  readonly overflow?: Overflow | undefined
  /** End the stream after this many messages. */
  readonly max?: number | undefined
}

/**
 * Options of `request`.
 *
 * @category models
 * @since 0.1.0
 */
export interface RequestOptions {
  /** Default 5 seconds. */
  readonly timeout?: Duration.Input | undefined
  readonly headers?: HeadersInit | undefined
}

/**
 * Options of `requestMany`: collect replies until `maxWait` passes, or
 * `maxMessages` arrived, or no reply came for `stall`.
 *
 * @category models
 * @since 0.1.0
 */
export interface RequestManyOptions {
  readonly maxWait?: Duration.Input | undefined
  readonly maxMessages?: number | undefined
  readonly stall?: Duration.Input | undefined
  readonly headers?: HeadersInit | undefined
}

/**
 * A reply produced by a `serve` handler: a payload, or a payload with headers.
 *
 * @category models
 * @since 0.1.0
 */
export type Reply = Payload | { readonly data?: Payload | undefined; readonly headers?: HeadersInit | undefined }

/**
 * Options of `serve`.
 *
 * @category models
 * @since 0.1.0
 */
export interface ServeOptions {
  /** Queue group shared by the responders; default none. */
  readonly queue?: string | undefined
  /** Requests handled at once. Default 1 (in order). */
  readonly concurrency?: number | undefined
  /** Requests buffered before handling. Default 1024; when full, requests are dropped (callers time out). */
  readonly bufferSize?: number | undefined
  /**
   * When the scope closes, intake stops and requests already received are
   * still answered for up to this long; then handlers are interrupted.
   * Default 10 seconds.
   */
  readonly gracePeriod?: Duration.Input | undefined
  /**
   * How a request's server span (`process {subject}`) relates to the
   * requester's span, when the request carries one (`traceparent`): its
   * child (default: one trace from the caller through the responder), or
   * the root of a new trace linked to it.
   */
  readonly traceParent?: "child" | "link" | undefined
}

/**
 * Header carrying a handler's failure message back to the caller (see
 * `Headers.ServiceErrorHeader`).
 *
 * @category constants
 * @since 0.1.0
 */
export const ServiceErrorHeader = Headers.ServiceErrorHeader

/**
 * Header carrying a handler's failure code back to the caller (see
 * `Headers.ServiceErrorCodeHeader`).
 *
 * @category constants
 * @since 0.1.0
 */
export const ServiceErrorCodeHeader = Headers.ServiceErrorCodeHeader

/**
 * The server the connection is on now (from its last `INFO`): after a
 * reconnect, the new one.
 *
 * @category models
 * @since 0.1.0
 */
export interface ServerInfo {
  /** The server's name (`server_name`). */
  readonly name: string
  /** The server's id (its public NKey). */
  readonly id: string
  /** The address connected to, `host:port`. */
  readonly address: string
  /** The nats-server version. */
  readonly version: string
  /** The cluster's name, when the server is in one. */
  readonly cluster: string | undefined
  /** Other servers of the cluster the client may reconnect to (`connect_urls`). */
  readonly connectUrls: ReadonlyArray<string>
  readonly jetstream: boolean
  readonly tlsRequired: boolean
  /** The largest message the server takes, in bytes. */
  readonly maxPayload: number
  /** The server is in lame duck mode (shutting down: clients should move away). */
  readonly lameDuck: boolean
}

/**
 * The connection service.
 *
 * @category models
 * @since 0.1.0
 */
export interface NatsClientShape {
  /** The raw nats.js connection (escape hatch). */
  readonly connection: NatsConnection
  /**
   * The connection's shared parts (request inbox, validation, limits) that
   * the other services of effect-nats build on. Internal: its shape may
   * change between releases.
   *
   * @internal
   */
  readonly core: Core.NatsCore
  /** Publish a message. Invalid subjects and oversize payloads fail before anything is sent. */
  readonly publish: (
    subject: string,
    payload?: Payload,
    options?: PublishOptions
  ) => Effect.Effect<void, NatsError.NatsError>
  /**
   * Publish many messages (an iterable or a Stream) with the cost of one
   * Effect per batch, not per message, and a `flush` (a round trip to the
   * server) every `flushEvery` messages, pipelined (the previous one is
   * awaited when the next is sent, the one in flight before it returns), so that a
   * fast producer cannot outrun the socket without bound and the socket never
   * runs dry. Stops at the first failure (messages before it were sent).
   */
  readonly publishAll: <E2 = never, R = never>(
    messages: Iterable<OutgoingMessage> | Stream.Stream<OutgoingMessage, E2, R>,
    options?: PublishAllOptions
  ) => Effect.Effect<void, NatsError.NatsError | E2, R>
  /** Subscribe to a subject or pattern (`*`, `>`), as a Stream with a bounded buffer. */
  readonly subscribe: (subject: string, options?: SubscribeOptions) => Stream.Stream<Msg, NatsError.NatsError>
  /**
   * Subscribe now: returns once the server has registered the interest, with
   * the Stream of this subscription (read it once). The subscription ends
   * with the scope.
   */
  readonly subscribeScoped: (
    subject: string,
    options?: SubscribeOptions
  ) => Effect.Effect<Stream.Stream<Msg, NatsError.NatsError>, NatsError.NatsError, Scope.Scope>
  /**
   * Send a request and wait for the first reply. A reply carrying the
   * `Nats-Service-Error` headers (a failed `serve` handler, a NATS service
   * error) fails with reason `ServiceError`. Interrupting it drops its reply
   * slot and timer at once (a late reply is ignored).
   */
  readonly request: (
    subject: string,
    payload?: Payload,
    options?: RequestOptions
  ) => Effect.Effect<Msg, NatsError.NatsError>
  /** Send a request and stream every reply. */
  readonly requestMany: (
    subject: string,
    payload?: Payload,
    options?: RequestManyOptions
  ) => Stream.Stream<Msg, NatsError.NatsError>
  /**
   * Answer requests on a subject until the scope closes. Returns once the
   * subscription is registered on the server. Closing the scope stops intake
   * and answers what was already received (within `gracePeriod`). The
   * returned fiber completes when the responder was stopped that way, and
   * fails with `ConnectionClosed` if it stopped because the connection closed.
   */
  readonly serve: <E2, R>(
    subject: string,
    handler: (msg: Msg) => Effect.Effect<Reply | void, E2, R>,
    options?: ServeOptions
  ) => Effect.Effect<Fiber.Fiber<void, NatsError.NatsError>, NatsError.NatsError, R | Scope.Scope>
  /** Round trip to the server: everything published before is processed. */
  readonly flush: Effect.Effect<void, NatsError.NatsError>
  /** Round-trip time to the server. */
  readonly rtt: Effect.Effect<Duration.Duration, NatsError.NatsError>
  /** The server the connection is on now; `undefined` before its first `INFO` (never, once connected). */
  readonly server: Effect.Effect<ServerInfo | undefined>
  /** Drain subscriptions and close the connection now (the layer does this on release). */
  readonly drain: Effect.Effect<void, NatsError.NatsError>
  /** Connection lifecycle events from when the stream starts; it ends after `Closed`. */
  readonly events: Stream.Stream<ConnectionEvent>
  /** Connection lifecycle events from now on (subscribed before it returns); it ends after `Closed`. */
  readonly eventsScoped: Effect.Effect<Stream.Stream<ConnectionEvent>, never, Scope.Scope>
  /** Fails with `ConnectionClosed` when the connection closes other than by release or `drain`. */
  readonly awaitClosed: Effect.Effect<void, NatsError.NatsError>
  /** Size limit of a message (payload plus headers) on the connected server. */
  readonly maxPayload: () => number
}

/**
 * nats.js headers from a `HeadersInit` (see `Headers.fromInit`).
 *
 * @category constructors
 * @since 0.1.0
 */
export const toHeaders: (init: HeadersInit) => MsgHdrs = Headers.fromInit

/**
 * A reply reporting a failure the NATS services way: the
 * `Nats-Service-Error` (a one-line message) and `Nats-Service-Error-Code`
 * headers, no payload.
 *
 * @category constructors
 * @since 0.1.0
 */
export const serviceErrorReply = (code: number, error: unknown): Reply => ({
  headers: Headers.serviceError(code, error)
})

/**
 * The default first-connect schedule: 4 quick exponential retries from 100 ms.
 *
 * @category defaults
 * @since 0.1.0
 */
export const defaultConnectSchedule: Schedule.Schedule<unknown, unknown> = Connection.defaultConnectSchedule

/**
 * The default reconnect schedule: exponential from 250 ms, capped at 5 s,
 * jittered, for up to 120 attempts.
 *
 * @category defaults
 * @since 0.1.0
 */
export const defaultReconnectSchedule: Schedule.Schedule<unknown, unknown> = Connection.defaultReconnectSchedule

/** The bridge options of a subscription, defaults filled in. */
const bridgeOptions = (options: SubscribeOptions | undefined): BridgeOptions => ({
  queue: options?.queue,
  max: options?.max,
  bufferSize: options?.bufferSize ?? 65_536,
  maxBytes: options?.maxBytes ?? 64 * 1024 * 1024,
  overflow: options?.overflow ?? "fail"
})

/** What a subscription checks before it subscribes. */
const checkSubscribe = (core: Core.NatsCore, subject: string, options: SubscribeOptions | undefined) =>
  core.validation.pattern(subject, "subscribe") ??
    core.validation.queue(subject, options?.queue, "subscribe") ??
    Validation.counts("subscribe", subject, {
      bufferSize: options?.bufferSize,
      maxBytes: options?.maxBytes,
      max: options?.max
    })

const span = <A, E, R>(name: string, effect: Effect.Effect<A, E, R>) =>
  Effect.withSpan(effect, name, { attributes: { "messaging.system": "nats" } })

/**
 * Connects and builds the service in the current scope; the scope's release
 * drains the connection (bounded by `drainTimeout`) and then closes it.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make: (
  options?: NatsClientOptions
) => Effect.Effect<NatsClientShape, NatsError.NatsError, Scope.Scope> = Effect.fnUntraced(
  function*(options: NatsClientOptions = {}) {
    const connection = yield* Connection.connect(options)
    const core = Core.make(connection)
    const nc = connection.nc
    const { publishAll, publishNow } = Publish.make(core)
    return NatsClient.of({
      connection: nc,
      core,
      publish: (subject, payload, options) =>
        Effect.withFiber((fiber) => {
          // no span in the caller: no span here, no header added
          if (fiber.cache.span === undefined) {
            const failed = publishNow(subject, payload, options)
            if (failed !== undefined) return Effect.fail(failed)
            Metrics.countPublished(subject, Metrics.sizeOf(payload), fiber.context, options?.destination)
            return Effect.void
          }
          const destination = options?.destination ?? subject
          return Effect.useSpan(`publish ${destination}`, {
            kind: "producer",
            attributes: TraceContext.attributes(nc, destination, "send", "publish")
          }, (span) => {
            const traced = { ...options, headers: TraceContext.withSpan(options?.headers, span) }
            const failed = publishNow(subject, payload, traced)
            if (failed !== undefined) return Effect.fail(failed)
            Metrics.countPublished(subject, Metrics.sizeOf(payload), fiber.context, options?.destination)
            return Effect.void
          })
        }),
      publishAll,
      subscribe: (subject, options) =>
        Stream.suspend(() => {
          const invalid = checkSubscribe(core, subject, options)
          return invalid === undefined ? subscribeStream(core, subject, bridgeOptions(options)) : Stream.fail(invalid)
        }),
      subscribeScoped: (subject, options) =>
        Effect.gen(function*() {
          const invalid = checkSubscribe(core, subject, options)
          if (invalid !== undefined) return yield* invalid
          const { confirmed, messages } = yield* acquire(core, subject, bridgeOptions(options))
          yield* confirmed
          return messages
        }),
      request: (subject, payload, options) => Request.request(core, subject, payload, options),
      requestMany: (subject, payload, options) => Request.requestMany(core, subject, payload, options),
      serve: (subject, handler, options) => Serve.serve(core, subject, handler, options),
      flush: span("NatsClient.flush", core.flush),
      rtt: span(
        "NatsClient.rtt",
        Effect.tryPromise({ try: () => nc.rtt(), catch: (cause) => fromUnknown(cause, { operation: "rtt" }) }).pipe(
          Effect.map(Duration.millis)
        )
      ),
      server: Effect.sync(() => serverInfo(nc)),
      drain: span("NatsClient.drain", connection.drain),
      events: Stream.fromPubSub(connection.events),
      eventsScoped: Effect.map(PubSub.subscribe(connection.events), Stream.fromSubscription),
      awaitClosed: Deferred.await(connection.closed),
      maxPayload: core.validation.maxPayload
    })
  }
)

const serverInfo = (nc: NatsConnection): ServerInfo | undefined => {
  const info = nc.info
  if (info === undefined) return undefined
  return {
    name: info.server_name,
    id: info.server_id,
    address: nc.getServer(),
    version: info.version,
    cluster: info.cluster,
    connectUrls: info.connect_urls ?? [],
    jetstream: info.jetstream === true,
    tlsRequired: info.tls_required === true,
    maxPayload: info.max_payload,
    lameDuck: info.ldm === true
  }
}

/**
 * The NATS connection service.
 *
 * @example
 * ```ts
 * const NatsLive = NatsClient.NatsClient.layer({ servers: "nats://127.0.0.1:4222", name: "orders" })
 * const program = Effect.gen(function*() {
 *   const nats = yield* NatsClient.NatsClient
 *   yield* nats.publish("orders.created", "o-1")
 *   const reply = yield* nats.request("pricing.lookup", "p-1", { timeout: "2 seconds" })
 * })
 * program.pipe(Effect.provide(NatsLive))
 * ```
 *
 * @category services
 * @since 0.1.0
 */
export class NatsClient extends Context.Service<NatsClient, NatsClientShape>()("effect-nats/NatsClient") {
  /**
   * A layer that connects with the given options and drains on release.
   *
   * @since 0.1.0
   */
  static readonly layer = (options?: NatsClientOptions): Layer.Layer<NatsClient, NatsError.NatsError> =>
    Layer.effect(NatsClient, make(options))

  /**
   * A layer whose options come from `Config` (default: `config`, reading
   * `NATS_URL`, `NATS_NAME` and the auth variables).
   *
   * @since 0.1.0
   */
  static readonly layerConfig = (
    options: Config.Config<NatsClientOptions> = config
  ): Layer.Layer<NatsClient, NatsError.NatsError | Config.ConfigError> =>
    Layer.effect(NatsClient, Effect.flatMap(options, make))
}

/**
 * Connection options from configuration: `NATS_URL` (comma separated, default
 * `nats://127.0.0.1:4222`), `NATS_NAME`, and the auth variables read by
 * `Auth.config` (`NATS_USER`/`NATS_PASSWORD`, `NATS_TOKEN`, `NATS_NKEY_SEED`,
 * `NATS_NKEY_FILE`, `NATS_CREDS`, `NATS_CREDS_FILE`), and the TLS variables read by `Tls.config` (`NATS_TLS_CA`,
 * `NATS_TLS_CERT`, `NATS_TLS_KEY` file paths, `NATS_TLS_SERVER_NAME`).
 *
 * @category config
 * @since 0.1.0
 */
export const config: Config.Config<NatsClientOptions> = Config.all({
  servers: Config.String("NATS_URL").pipe(Config.withDefault("nats://127.0.0.1:4222")),
  name: Config.option(Config.String("NATS_NAME")),
  auth: Auth.config,
  tls: Tls.config
}).pipe(Config.map(({ auth, name, servers, tls }) => ({
  servers,
  ...(Option.isSome(name) ? { name: name.value } : {}),
  ...(Option.isSome(auth) ? { auth: auth.value } : {}),
  ...(Option.isSome(tls) ? { tls: tls.value } : {})
})))
