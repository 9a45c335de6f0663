/**
 * Discovery of NATS services (any client's: effect-nats `Service`,
 * `@nats-io/services`, Go's `micro`): `ping`, `info` and `stats` of every
 * service, of every instance of one name, or of one instance, each a Stream
 * of the decoded answers as they arrive. A request goes to
 * `$SRV.<VERB>[.<name>[.<id>]]` and gathers answers until `maxWait` passes
 * (default 2 seconds, as nats.js), `maxMessages` arrived, or none came for
 * `stall`. No instance is an empty Stream. An answer that is not valid is logged and skipped: one broken
 * instance does not hide the others.
 *
 * @example
 * ```ts
 * const instances = yield* ServiceClient.ping("pricing", { stall: "200 millis" }).pipe(Stream.runCollect)
 * ```
 *
 * @since 0.1.0
 */
import type { Duration } from "effect"
import { Effect, Result, Schema, Stream } from "effect"
import type * as NatsError from "../schemas/NatsError.ts"
import * as ServiceInfo from "../schemas/ServiceInfo.ts"
import { NatsClient } from "./NatsClient.ts"

/**
 * How long to gather answers.
 *
 * @category models
 * @since 0.1.0
 */
export interface DiscoveryOptions {
  /** Stop after this long. Default 2 seconds. */
  readonly maxWait?: Duration.Input | undefined
  /** Stop after this many answers. */
  readonly maxMessages?: number | undefined
  /** Stop when no answer came for this long (after the first). */
  readonly stall?: Duration.Input | undefined
  /** Only this service's instances. */
  readonly name?: string | undefined
  /** Only this instance (with `name`). */
  readonly id?: string | undefined
}

const discover = <S extends Schema.Codec<unknown, unknown>>(verb: string, schema: S) => {
  const decode = Schema.decodeUnknownResult(Schema.fromJsonString(schema) as unknown as Schema.Codec<S["Type"], string>)
  return (options?: DiscoveryOptions): Stream.Stream<S["Type"], NatsError.NatsError, NatsClient> => {
    const subject = options?.name === undefined
      ? `$SRV.${verb}`
      : options.id === undefined
      ? `$SRV.${verb}.${options.name}`
      : `$SRV.${verb}.${options.name}.${options.id}`
    return Stream.unwrap(NatsClient.use((client) =>
      Effect.succeed(
        client.requestMany(subject, undefined, {
          maxWait: options?.maxWait ?? "2 seconds",
          maxMessages: options?.maxMessages,
          stall: options?.stall
        }).pipe(
          Stream.filterMapEffect((msg) => {
            const decoded = decode(msg.string())
            return Result.isSuccess(decoded)
              ? Effect.succeed(Result.succeed(decoded.success))
              : Effect.as(
                Effect.logWarning(`nats: an invalid answer to ${subject} was skipped: ${decoded.failure.message}`),
                Result.failVoid
              )
          }),
          // no instance at all: none to list
          Stream.catchIf((error) => error.reason._tag === "NoResponders", () => Stream.empty)
        )
      )
    ))
  }
}

/**
 * The identity (name, id, version, metadata) of each instance that answers.
 *
 * @category discovery
 * @since 0.1.0
 */
export const ping: (options?: DiscoveryOptions) => Stream.Stream<ServiceInfo.Ping, NatsError.NatsError, NatsClient> =
  discover("PING", ServiceInfo.Ping)

/**
 * Each instance's description and endpoints (subjects, queue groups, metadata).
 *
 * @category discovery
 * @since 0.1.0
 */
export const info: (options?: DiscoveryOptions) => Stream.Stream<ServiceInfo.Info, NatsError.NatsError, NatsClient> =
  discover("INFO", ServiceInfo.Info)

/**
 * Each instance's counters per endpoint.
 *
 * @category discovery
 * @since 0.1.0
 */
export const stats: (options?: DiscoveryOptions) => Stream.Stream<ServiceInfo.Stats, NatsError.NatsError, NatsClient> =
  discover("STATS", ServiceInfo.Stats)
