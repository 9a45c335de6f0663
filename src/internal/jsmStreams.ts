/**
 * The JetStream manager's stream operations: create-or-update (an update
 * sent only when a requested field differs), info, list, find by subject,
 * purge, delete, read a message.
 *
 * @internal
 */
import type {
  JetStreamManager as NatsJetStreamManager,
  PurgeOpts,
  StreamInfo as NatsStreamInfo
} from "@nats-io/jetstream"
import { jserrors } from "@nats-io/jetstream/internal"
import { Effect, Option, Stream } from "effect"
import type * as NatsError from "../schemas/NatsError.ts"
import * as StreamConfig from "../schemas/StreamConfig.ts"
import * as Subject from "../schemas/Subject.ts"
import type {
  JetStreamManagerShape,
  MessageQuery,
  PurgeOptions,
  StoredMessage,
  StreamInfo
} from "../services/JetStreamManager.ts"
import { invalidArgument, invalidSubject } from "./errors.ts"
import { ApiCodes, jsFromUnknown } from "./jsErrors.ts"
import type { Call } from "./jsmCommon.ts"
import {
  decodeMessageQuery,
  decodePurgeOptions,
  decodeStreamConfig,
  decodeStreamName,
  immutableStreamFields,
  isReason,
  read,
  refused,
  streamFieldWords
} from "./jsmCommon.ts"
import { streamInfoFromNats } from "./jsmInfo.ts"

/** The stream operations over a nats.js manager. */
export const make = (jsm: NatsJetStreamManager, call: Call): Pick<
  JetStreamManagerShape,
  | "createOrUpdateStream"
  | "streamInfo"
  | "listStreams"
  | "streamNameBySubject"
  | "purgeStream"
  | "deleteStream"
  | "getMessage"
> => {
  const rawStreamInfo = (operation: string, name: string) =>
    call({ operation, stream: name }, () => jsm.streams.info(name))

  const streamInfo = Effect.fn("JetStreamManager.streamInfo")(function*(name: string) {
    const operation = "JetStreamManager.streamInfo"
    yield* decodeStreamName(operation, name)
    return yield* read(operation, streamInfoFromNats)(yield* rawStreamInfo(operation, name))
  })

  const updateStream = (
    operation: string,
    config: StreamConfig.StreamConfig,
    current: NatsStreamInfo
  ): Effect.Effect<StreamInfo, NatsError.NatsError> =>
    Effect.gen(function*() {
      const currentConfig = yield* read(operation, StreamConfig.fromNats)(current.config)
      const changed = StreamConfig.diff(config, currentConfig)
      if (changed.length === 0) return yield* read(operation, streamInfoFromNats)(current)
      return yield* call(
        { operation, stream: config.name },
        () => jsm.streams.update(config.name, StreamConfig.toNats(config))
      ).pipe(
        Effect.mapError(refused(changed, streamFieldWords, immutableStreamFields)),
        Effect.flatMap(read(operation, streamInfoFromNats))
      )
    })

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
        Effect.flatMap(read(operation, streamInfoFromNats)),
        Effect.catchIf(
          // Created concurrently by someone else: update it instead.
          (error) => error.reason._tag === "JetStreamApi" && error.reason.errCode === ApiCodes.StreamNameInUse,
          () => Effect.flatMap(rawStreamInfo(operation, config.name), (info) => updateStream(operation, config, info))
        ),
        Effect.mapError(refused(Object.keys(config), streamFieldWords, []))
      )
    }
  )

  const listStreams = (
    options?: { readonly subject?: string | undefined }
  ): Stream.Stream<StreamInfo, NatsError.NatsError> =>
    Stream.suspend(() =>
      Stream.fromAsyncIterable(
        jsm.streams.list(options?.subject),
        (cause) => jsFromUnknown(cause, { operation: "JetStreamManager.listStreams", subject: options?.subject })
      )
    ).pipe(Stream.mapEffect(read("JetStreamManager.listStreams", streamInfoFromNats)))

  const streamNameBySubject = Effect.fn("JetStreamManager.streamNameBySubject")(function*(subject: string) {
    const operation = "JetStreamManager.streamNameBySubject"
    const problem = Subject.validateSubject(subject)
    if (problem !== undefined) return yield* invalidSubject(operation, subject, problem)
    return yield* call(
      { operation, subject },
      () =>
        jsm.streams.find(subject).then(
          (name) => Option.some(name),
          (cause: unknown) =>
            cause instanceof jserrors.StreamNotFoundError ? Option.none<string>() : Promise.reject(cause)
        )
    )
  })

  const purgeStream = Effect.fn("JetStreamManager.purgeStream")(function*(name: string, options?: PurgeOptions) {
    const operation = "JetStreamManager.purgeStream"
    yield* decodeStreamName(operation, name)
    const o = yield* decodePurgeOptions(operation, options ?? {})
    if (o.keep !== undefined && o.upToSequence !== undefined) {
      return yield* invalidArgument(operation, "purge options: keep and upToSequence exclude each other")
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

  return { createOrUpdateStream, streamInfo, listStreams, streamNameBySubject, purgeStream, deleteStream, getMessage }
}
