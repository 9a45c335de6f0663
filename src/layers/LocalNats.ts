/**
 * Ready-made layers for programs, examples and tests: a `NatsClient` connected
 * to a throwaway embedded `nats-server`, or to `NATS_URL` when it is set.
 *
 * @since 0.1.0
 */
import { Config, Effect, Layer, Option } from "effect"
import type { NatsError } from "../schemas/NatsError.ts"
import * as NatsClient from "../services/NatsClient.ts"
import * as NatsServer from "./NatsServer.ts"

/**
 * Options of the embedded layers.
 *
 * @category models
 * @since 0.1.0
 */
export interface LocalNatsOptions {
  readonly server?: NatsServer.NatsServerOptions | undefined
  readonly client?: Omit<NatsClient.NatsClientOptions, "servers"> | undefined
}

/**
 * A throwaway embedded server and a `NatsClient` connected to it (to every
 * node of a cluster; to a TLS server trusting its CA). Both are released with
 * the layer: the client drains first, then the server stops.
 *
 * @example
 * ```ts
 * // a client on a throwaway nats-server, both released with the layer
 * program.pipe(Effect.provide(LocalNats.layer({ server: { cluster: 3 } })))
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (
  options: LocalNatsOptions = {}
): Layer.Layer<NatsClient.NatsClient | NatsServer.NatsServer, NatsError | NatsServer.NatsServerError> =>
  clientOfServer(options).pipe(Layer.provideMerge(NatsServer.layer(options.server)))

const clientOfServer = (options: LocalNatsOptions) =>
  Layer.effect(
    NatsClient.NatsClient,
    NatsServer.NatsServer.use((server) =>
      NatsClient.make({
        ...options.client,
        // a TLS server: trust its throwaway CA (unless the client names its own)
        ...(server.tls === undefined ? {} : { tls: { caFile: server.tls.caFile, ...options.client?.tls } }),
        servers: server.urls
      })
    )
  )

/**
 * A `NatsClient` for programs and examples: connects to `NATS_URL` (with the
 * other `NatsClient.config` variables) when it is set, and otherwise starts an
 * embedded server for the life of the layer.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerConfig = (
  options: LocalNatsOptions = {}
): Layer.Layer<NatsClient.NatsClient, NatsError | NatsServer.NatsServerError | Config.ConfigError> =>
  Layer.unwrap(
    Effect.map(
      Config.option(Config.String("NATS_URL")),
      (url): Layer.Layer<NatsClient.NatsClient, NatsError | NatsServer.NatsServerError | Config.ConfigError> =>
        Option.isSome(url)
          ? NatsClient.NatsClient.layerConfig(
            Config.map(NatsClient.config, (config) => ({
              ...options.client,
              ...config,
              ...(config.tls === undefined ? {} : { tls: { ...options.client?.tls, ...config.tls } })
            }))
          )
          : clientOfServer(options).pipe(Layer.provide(NatsServer.layer(options.server)))
    )
  )
