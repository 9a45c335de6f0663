/**
 * The JetStream manager's consumer operations: create-or-update a durable
 * (an update sent only when a requested field differs), add (ephemeral, or a
 * durable that must not exist yet), info, list, delete.
 *
 * @internal
 */
import type { ConsumerConfig as NatsConsumerConfig, JetStreamManager as NatsJetStreamManager } from "@nats-io/jetstream"
import { Effect, Option, Stream } from "effect"
import * as ConsumerConfig from "../schemas/ConsumerConfig.ts"
import type * as NatsError from "../schemas/NatsError.ts"
import type { ConsumerInfo, JetStreamManagerShape } from "../services/JetStreamManager.ts"
import { invalidArgument, jetStreamApi } from "./errors.ts"
import { ApiCodes, jsFromUnknown } from "./jsErrors.ts"
import type { Call } from "./jsmCommon.ts"
import {
  consumerFieldWords,
  decodeConsumerConfig,
  decodeConsumerName,
  decodeStreamName,
  immutableConsumerFields,
  isReason,
  read,
  refused
} from "./jsmCommon.ts"
import { consumerInfoFromNats } from "./jsmInfo.ts"

/** The wire config; an unset `ackPolicy` is left out on update so the current one is kept. */
const consumerToNats = (config: ConsumerConfig.ConsumerConfig, update: boolean): Partial<NatsConsumerConfig> => {
  const wire = ConsumerConfig.toNats(config)
  if (update && config.ackPolicy === undefined) {
    const { ack_policy: _, ...rest } = wire
    return rest
  }
  return wire
}

/** The consumer operations over a nats.js manager. */
export const make = (jsm: NatsJetStreamManager, call: Call): Pick<
  JetStreamManagerShape,
  "createOrUpdateConsumer" | "addConsumer" | "consumerInfo" | "listConsumers" | "deleteConsumer"
> => {
  const rawConsumerInfo = (operation: string, stream: string, name: string) =>
    call({ operation, stream, consumer: name }, () => jsm.consumers.info(stream, name))

  const consumerInfo = Effect.fn("JetStreamManager.consumerInfo")(function*(stream: string, name: string) {
    const operation = "JetStreamManager.consumerInfo"
    yield* decodeStreamName(operation, stream)
    yield* decodeConsumerName(operation, name)
    return yield* read(operation, consumerInfoFromNats)(yield* rawConsumerInfo(operation, stream, name))
  })

  const addConsumerRaw = (operation: string, stream: string, config: ConsumerConfig.ConsumerConfig) =>
    call(
      { operation, stream, consumer: config.durable },
      () => jsm.consumers.add(stream, consumerToNats(config, false))
    )
      .pipe(
        Effect.mapError(refused(Object.keys(config), consumerFieldWords, [])),
        Effect.flatMap(read(operation, consumerInfoFromNats))
      )

  const createOrUpdateConsumer = Effect.fn("JetStreamManager.createOrUpdateConsumer")(
    function*(stream: string, input: ConsumerConfig.ConsumerConfig) {
      const operation = "JetStreamManager.createOrUpdateConsumer"
      yield* decodeStreamName(operation, stream)
      const config = yield* decodeConsumerConfig(operation, input)
      const durable = config.durable
      if (durable === undefined) {
        return yield* invalidArgument(
          operation,
          "createOrUpdateConsumer needs a durable name; use addConsumer for an ephemeral consumer"
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
      const currentConfig = yield* read(operation, ConsumerConfig.fromNats)(current.config)
      // With a backoff, the server sets ackWait to the first backoff step and ignores the requested one.
      const backoff = config.backoff ?? currentConfig.backoff ?? []
      const changed = ConsumerConfig.diff(config, currentConfig).filter((field) =>
        !(field === "ackWait" && backoff.length > 0)
      )
      if (changed.length === 0) return yield* read(operation, consumerInfoFromNats)(current)
      return yield* call(
        { operation, stream, consumer: durable },
        () => jsm.consumers.update(stream, durable, consumerToNats(config, true))
      ).pipe(
        Effect.mapError(refused(changed, consumerFieldWords, immutableConsumerFields)),
        Effect.flatMap(read(operation, consumerInfoFromNats))
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
          return yield* jetStreamApi(operation, `consumer ${durable} already exists on stream ${stream}`, {
            code: 400,
            errCode: ApiCodes.ConsumerAlreadyExists,
            field: "durable"
          })
        }
      }
      return yield* addConsumerRaw(operation, stream, config)
    }
  )

  const listConsumers = (stream: string): Stream.Stream<ConsumerInfo, NatsError.NatsError> =>
    Stream.unwrap(
      Effect.map(
        decodeStreamName("JetStreamManager.listConsumers", stream),
        () =>
          Stream.fromAsyncIterable(
            jsm.consumers.list(stream),
            (cause) => jsFromUnknown(cause, { operation: "JetStreamManager.listConsumers", stream })
          )
      )
    ).pipe(Stream.mapEffect(read("JetStreamManager.listConsumers", consumerInfoFromNats)))

  const deleteConsumer = Effect.fn("JetStreamManager.deleteConsumer")(function*(stream: string, name: string) {
    const operation = "JetStreamManager.deleteConsumer"
    yield* decodeStreamName(operation, stream)
    yield* decodeConsumerName(operation, name)
    yield* call({ operation, stream, consumer: name }, () => jsm.consumers.delete(stream, name))
  })

  return { createOrUpdateConsumer, addConsumer, consumerInfo, listConsumers, deleteConsumer }
}
