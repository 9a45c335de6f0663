/**
 * NATS as a transport for Effect's own RPC (`effect/rpc`): an `RpcGroup`
 * served on a subject by any number of instances in a queue group (the load
 * spread over them, an instance that stops replaced by the others for new
 * calls), and called from anywhere on the same NATS. Unary calls, streaming
 * responses with acks (backpressure: the server sends a chunk, the client
 * acks it), typed errors and defects, interruption reaching the handler's
 * fiber, middleware, span propagation and any `RpcSerialization` (JSON,
 * NDJSON, MessagePack) work as on Effect's socket transport.
 *
 * **How a request finds its instance.** A new request is published on the
 * group's subject; the queue group gives it to one instance. Its follow-ups
 * (the client's acks of stream chunks, its interrupt) must reach that same
 * instance, so each instance also listens on a subject of its own and names
 * it on the first chunk it sends and in its heartbeats; an interrupt sent
 * before the client knows goes to every instance (the one that will get the
 * request remembers it, and drops the request when it arrives).
 *
 * **When an instance dies.** Every `heartbeat` (default 1 second) each
 * instance sends each client with requests there a heartbeat that lists
 * them, and the client answers. A request whose instance has been silent
 * for three heartbeats, or that no instance claimed within three, fails
 * with an `RpcClientError` (a stream fails, a call fails): in about three
 * seconds by default, not never. So does a request its instance's
 * heartbeats have stopped listing for three (its response was lost, in a
 * reconnect say). A request to a subject nobody serves fails at once; a
 * response too large to send fails its call with a defect. The other way,
 * an instance disconnects a client that stopped answering (no responders,
 * or three missed heartbeats), which interrupts that client's handlers,
 * and forgets a client idle for 30 heartbeats. Heartbeats are answered on
 * nats.js' callback, so a slow reader of a stream never looks dead.
 *
 * The protocol needs real time (heartbeats): run it on the live `Clock`.
 *
 * @example
 * ```ts
 * const ServerLive = NatsRpc.layerServer(Orders, { subject: "orders.rpc" }).pipe(
 *   Layer.provide(OrdersHandlers),
 *   Layer.provide(RpcSerialization.layerJson)
 * )
 * const ClientLive = NatsRpc.layerProtocolClient({ subject: "orders.rpc" }).pipe(
 *   Layer.provide(RpcSerialization.layerJson)
 * )
 * const program = Effect.gen(function*() {
 *   const client = yield* RpcClient.make(Orders)
 *   return yield* client.GetOrder({ id: "o-1" })
 * })
 * ```
 *
 * @since 0.1.0
 */
import { Duration } from "effect"
import { Effect, Exit, Layer, Result, Scope } from "effect"
import type * as Rpc from "effect/rpc/Rpc"
import * as RpcClient from "effect/rpc/RpcClient"
import type * as RpcGroup from "effect/rpc/RpcGroup"
import type * as RpcSerialization from "effect/rpc/RpcSerialization"
import * as RpcServer from "effect/rpc/RpcServer"
import * as ClientProtocol from "../internal/rpcClientProtocol.ts"
import * as ServerProtocol from "../internal/rpcServerProtocol.ts"
import { counts, duration } from "../internal/validation.ts"
import type * as NatsError from "../schemas/NatsError.ts"
import { NatsClient } from "../services/NatsClient.ts"

/**
 * Options shared by both sides.
 *
 * @category models
 * @since 0.1.0
 */
export interface CommonOptions {
  /** The subject the group is served on (no wildcards; instances add tokens after it). */
  readonly subject: string
  /**
   * Interval of the instances' heartbeats; a request whose instance was
   * silent for three fails. Use the same on both sides. Default 1 second.
   */
  readonly heartbeat?: Duration.Input | undefined
  /** Messages buffered between the connection and the protocol. Default 65536. */
  readonly bufferSize?: number | undefined
}

/**
 * Options of the server protocol.
 *
 * @category models
 * @since 0.1.0
 */
export interface ServerOptions extends CommonOptions {
  /** The instances' queue group. Default `"effect-rpc"`. */
  readonly queue?: string | undefined
}

/**
 * Options of `layerServer`: the protocol's, the `RpcServer`'s, and the
 * graceful stop.
 *
 * @category models
 * @since 0.1.0
 */
export interface LayerServerOptions extends ServerOptions {
  /** When the layer is released, how long requests already taken may still finish. Default 10 seconds. */
  readonly gracePeriod?: Duration.Input | undefined
  readonly concurrency?: number | "unbounded" | undefined
  /**
   * Whether a handler's defect ends only its own call (default `true`), or,
   * as `RpcServer`'s own default, every call of its client.
   */
  readonly disableFatalDefects?: boolean | undefined
  readonly disableTracing?: boolean | undefined
  readonly spanPrefix?: string | undefined
}

const checked = (
  operation: string,
  options: CommonOptions,
  validate: (subject: string) => NatsError.NatsError | undefined
) => {
  const invalid = validate(options.subject) ?? counts(operation, options.subject, { bufferSize: options.bufferSize })
  if (invalid !== undefined) return Result.fail(invalid)
  return Result.map(duration(operation, "heartbeat", options.heartbeat, "1 second"), (d) => ({
    subject: options.subject,
    heartbeatMillis: Math.max(1, Math.round(Duration.toMillis(d))),
    bufferSize: options.bufferSize ?? 65536
  }))
}

const serverProtocol = Effect.fnUntraced(function*(options: ServerOptions) {
  const nats = yield* NatsClient
  const operation = "NatsRpc.server"
  const settings = checked(
    operation,
    options,
    (subject) =>
      nats.core.validation.subject(subject, operation) ??
        nats.core.validation.queue(subject, options.queue ?? "effect-rpc", operation)
  )
  if (Result.isFailure(settings)) return yield* settings.failure
  return yield* ServerProtocol.make(nats, { ...settings.success, queue: options.queue ?? "effect-rpc" })
})

/**
 * The `RpcServer.Protocol` over NATS, for `RpcServer.layer(group)`. Its
 * release unsubscribes at once; `layerServer` stops gracefully instead.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerProtocolServer = (
  options: ServerOptions
): Layer.Layer<RpcServer.Protocol, NatsError.NatsError, NatsClient | RpcSerialization.RpcSerialization> =>
  Layer.effect(RpcServer.Protocol, Effect.map(serverProtocol(options), (server) => server.protocol))

/**
 * Serves `group` over NATS: the protocol and the `RpcServer`, with a
 * graceful stop on release (no new requests are taken; those taken finish
 * within `gracePeriod`; then the rest are interrupted).
 *
 * @category layers
 * @since 0.1.0
 */
export const layerServer = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  options: LayerServerOptions
): Layer.Layer<
  never,
  NatsError.NatsError,
  | NatsClient
  | RpcSerialization.RpcSerialization
  | Rpc.ToHandler<Rpcs>
  | Rpc.Middleware<Rpcs>
  | Rpc.ServicesServer<Rpcs>
> =>
  Layer.effectDiscard(Effect.gen(function*() {
    const grace = duration("NatsRpc.layerServer", "gracePeriod", options.gracePeriod, "10 seconds", true)
    if (Result.isFailure(grace)) return yield* grace.failure
    const server = yield* serverProtocol(options)
    const serverScope = yield* Scope.fork(yield* Effect.scope)
    yield* RpcServer.make(group, {
      concurrency: options.concurrency,
      disableFatalDefects: options.disableFatalDefects ?? true,
      disableTracing: options.disableTracing,
      spanPrefix: options.spanPrefix
    }).pipe(
      Effect.provideService(RpcServer.Protocol, server.protocol),
      Effect.forkIn(serverScope)
    )
    // runs first on release: intake stops and what was taken finishes, then the server stops
    yield* Effect.addFinalizer(() =>
      server.drain(Duration.toMillis(grace.success)).pipe(Effect.andThen(Scope.close(serverScope, Exit.void)))
    )
  }))

/**
 * The `RpcClient.Protocol` over NATS, for `RpcClient.make(group)`.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerProtocolClient = (
  options: CommonOptions
): Layer.Layer<RpcClient.Protocol, NatsError.NatsError, NatsClient | RpcSerialization.RpcSerialization> =>
  Layer.effect(
    RpcClient.Protocol,
    Effect.gen(function*() {
      const nats = yield* NatsClient
      const operation = "NatsRpc.client"
      const settings = checked(operation, options, (subject) => nats.core.validation.subject(subject, operation))
      if (Result.isFailure(settings)) return yield* settings.failure
      return yield* ClientProtocol.make(nats, settings.success)
    })
  )
