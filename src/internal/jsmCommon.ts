/**
 * What the JetStream manager's operations share: the call of a nats.js
 * manager method with its failure mapped, input validation by Schema (a
 * typed `InvalidArgument`), and the field a refused change is about.
 *
 * @internal
 */
import { Effect, Schema } from "effect"
import * as ConsumerConfig from "../schemas/ConsumerConfig.ts"
import type * as NatsError from "../schemas/NatsError.ts"
import * as StreamConfig from "../schemas/StreamConfig.ts"
import { invalidArgument, jetStreamApi, unknown } from "./errors.ts"
import type { JsContext } from "./jsErrors.ts"
import { jsFromUnknown } from "./jsErrors.ts"

/** A nats.js manager call, its failure mapped. */
export type Call = <A>(ctx: JsContext, f: () => Promise<A>) => Effect.Effect<A, NatsError.NatsError>

/** Listens to the publishes the server refused (see `NatsCore.onPublishRefused`). */
export type Refusals = (listener: (subject: string, cause: unknown) => void) => () => void

/** A JetStream API subject (of any domain or prefix) about the call's stream, if it names one. */
const concerns = (subject: string, ctx: JsContext): boolean =>
  /^\$JS\.(?:[^.]+\.)?API\./.test(subject) && (ctx.stream === undefined || subject.includes(`.${ctx.stream}`))

/**
 * The calls of a manager. With `refusals`, a call whose API request the
 * server refuses (the user may not publish to that API subject: the server
 * says so asynchronously, and nats.js would wait for its timeout) fails at
 * once with `PermissionViolation`.
 */
export const makeCall = (refusals: Refusals | undefined): Call => <A>(ctx: JsContext, f: () => Promise<A>) =>
  refusals === undefined
    ? Effect.tryPromise({ try: f, catch: (cause) => jsFromUnknown(cause, ctx) })
    : Effect.callback<A, NatsError.NatsError>((resume) => {
      let settled = false
      const settle = (effect: Effect.Effect<A, NatsError.NatsError>) => {
        if (settled) return
        settled = true
        off()
        resume(effect)
      }
      const off = refusals((subject, cause) => {
        if (concerns(subject, ctx)) settle(Effect.fail(jsFromUnknown(cause, ctx)))
      })
      f().then(
        (a) => settle(Effect.succeed(a)),
        (cause: unknown) => settle(Effect.fail(jsFromUnknown(cause, ctx)))
      )
      return Effect.sync(off)
    })

/**
 * A conversion of what the server answered: a shape it cannot read is a
 * `NatsError` (reason `Unknown`), not a defect.
 */
export const read = <A, B>(operation: string, convert: (a: A) => B) => (a: A): Effect.Effect<B, NatsError.NatsError> =>
  Effect.try({
    try: () => convert(a),
    catch: (cause) =>
      unknown(
        operation,
        `${operation}: the server's answer could not be read (${
          cause instanceof Error ? cause.message : String(cause)
        })`,
        cause
      )
  })

/** Whether the error has this reason. */
export const isReason = (error: NatsError.NatsError, tag: NatsError.NatsErrorReason["_tag"]): boolean =>
  error.reason._tag === tag

// -----------------------------------------------------------------------------
// Validation
// -----------------------------------------------------------------------------

const decodeWith = <S extends Schema.Codec<unknown, unknown, never, never>>(schema: S, what: string) => {
  const decode = Schema.decodeUnknownEffect(schema)
  return (operation: string, input: unknown): Effect.Effect<S["Type"], NatsError.NatsError> =>
    decode(input, { errors: "all" }).pipe(
      Effect.mapError((error) => invalidArgument(operation, `invalid ${what}: ${error.message}`, { cause: error }))
    )
}

// The schemas' Encoded side is the wire shape: a user's typed configuration is validated against their type side.
export const decodeStreamConfig = decodeWith(Schema.toType(StreamConfig.StreamConfig), "stream configuration")
export const decodeConsumerConfig = decodeWith(Schema.toType(ConsumerConfig.ConsumerConfig), "consumer configuration")
export const decodeStreamName = decodeWith(StreamConfig.Name, "stream name")
export const decodeConsumerName = decodeWith(StreamConfig.Name, "consumer name")

const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))
const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
export const decodePurgeOptions = decodeWith(
  Schema.Struct({
    subject: Schema.optional(Schema.String.check(Schema.isMinLength(1))),
    keep: Schema.optional(NonNegativeInt),
    upToSequence: Schema.optional(PositiveInt)
  }),
  "purge options"
)
export const decodeMessageQuery = decodeWith(
  Schema.Union([
    Schema.Struct({ seq: PositiveInt }),
    Schema.Struct({ lastBySubject: Schema.String.check(Schema.isMinLength(1)) })
  ]),
  "message query"
)

// -----------------------------------------------------------------------------
// The field of a refused change
// -----------------------------------------------------------------------------

/** Fields nats-server 2.9.10 refuses to change on update. */
export const immutableStreamFields: ReadonlyArray<string> = ["name", "retention", "storage", "maxConsumers"]
export const immutableConsumerFields: ReadonlyArray<string> = [
  "durable",
  "ackPolicy",
  "deliverPolicy",
  "replayPolicy",
  "maxWaiting",
  "flowControl",
  "idleHeartbeat"
]

/** Words of a server error message that name a field. */
export const streamFieldWords: ReadonlyArray<readonly [string, RegExp]> = [
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
export const consumerFieldWords: ReadonlyArray<readonly [string, RegExp]> = [
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
export const offendingField = (
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
export const withField = (error: NatsError.NatsError, field: string | undefined): NatsError.NatsError => {
  const r = error.reason
  if (field === undefined || r._tag !== "JetStreamApi" || r.field !== undefined) return error
  return jetStreamApi(r.operation ?? "JetStreamManager", `${r.message ?? "refused"} (field: ${field})`, {
    code: r.code,
    errCode: r.errCode,
    field
  }, { subject: r.subject, cause: r.cause })
}

/** A refused change with the offending field named (found in the server's message, else guessed). */
export const refused = (
  candidates: ReadonlyArray<string>,
  words: ReadonlyArray<readonly [string, RegExp]>,
  immutable: ReadonlyArray<string>
) =>
(error: NatsError.NatsError): NatsError.NatsError =>
  withField(error, offendingField(candidates, error.reason.message ?? "", words, immutable))
