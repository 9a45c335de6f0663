/**
 * The one error family of effect-nats: `NatsError` with a tagged `reason`.
 *
 * Every failure of the client (connection, auth, subjects, requests, limits)
 * surfaces as a `NatsError` whose `reason` says what happened and whether a
 * retry may succeed (`isRetryable`). Raw nats.js errors are mapped into it and
 * kept only as the `cause`; secrets never appear in a message.
 *
 * @since 0.1.0
 */
import { Predicate, Schema } from "effect"

const TypeId = "~effect-nats/NatsError" as const
const ReasonTypeId = "~effect-nats/NatsError/Reason" as const

const Common = {
  message: Schema.optional(Schema.String),
  operation: Schema.optional(Schema.String),
  subject: Schema.optional(Schema.String),
  cause: Schema.optional(Schema.Defect())
}

/**
 * A request or operation did not complete in time. Retryable.
 *
 * @category reasons
 * @since 0.1.0
 */
export class Timeout extends Schema.TaggedError<Timeout>("effect-nats/NatsError/Timeout")("Timeout", {
  ...Common,
  timeoutMillis: Schema.optional(Schema.Number)
}) {
  /** @since 0.1.0 */
  readonly [ReasonTypeId] = ReasonTypeId
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return true
  }
}

/**
 * Nobody subscribes to the subject a request was sent to. Retryable: a
 * responder may come up.
 *
 * @category reasons
 * @since 0.1.0
 */
export class NoResponders extends Schema.TaggedError<NoResponders>("effect-nats/NatsError/NoResponders")(
  "NoResponders",
  Common
) {
  /** @since 0.1.0 */
  readonly [ReasonTypeId] = ReasonTypeId
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return true
  }
}

/**
 * The connection is closed for good (closed by the user, or its reconnect
 * schedule gave up). Not retryable on this connection.
 *
 * @category reasons
 * @since 0.1.0
 */
export class ConnectionClosed extends Schema.TaggedError<ConnectionClosed>("effect-nats/NatsError/ConnectionClosed")(
  "ConnectionClosed",
  Common
) {
  /** @since 0.1.0 */
  readonly [ReasonTypeId] = ReasonTypeId
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return false
  }
}

/**
 * The connection dropped while a request (or a JetStream publish) waited for
 * its reply: the reply is lost, and the request may or may not have been
 * processed. Retryable (the connection reconnects); give a JetStream publish
 * a `msgId` so that a retry stores it once.
 *
 * @category reasons
 * @since 0.1.0
 */
export class Disconnected extends Schema.TaggedError<Disconnected>("effect-nats/NatsError/Disconnected")(
  "Disconnected",
  Common
) {
  /** @since 0.1.0 */
  readonly [ReasonTypeId] = ReasonTypeId
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return true
  }
}

/**
 * No server could be reached while connecting. Retryable.
 *
 * @category reasons
 * @since 0.1.0
 */
export class ConnectionRefused
  extends Schema.TaggedError<ConnectionRefused>("effect-nats/NatsError/ConnectionRefused")("ConnectionRefused", {
    ...Common,
    servers: Schema.optional(Schema.Array(Schema.String))
  })
{
  /** @since 0.1.0 */
  readonly [ReasonTypeId] = ReasonTypeId
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return true
  }
}

/**
 * The connection is draining: no new subscriptions or requests are accepted.
 *
 * @category reasons
 * @since 0.1.0
 */
export class Draining extends Schema.TaggedError<Draining>("effect-nats/NatsError/Draining")("Draining", Common) {
  /** @since 0.1.0 */
  readonly [ReasonTypeId] = ReasonTypeId
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return false
  }
}

/**
 * The TLS handshake failed: a server certificate from a CA that is not
 * trusted, a name the certificate is not valid for, a client certificate the
 * server requires and did not get or does not trust, a version either side
 * refuses. `message` has the TLS layer's words. Not retryable: the same
 * certificates fail again.
 *
 * @category reasons
 * @since 0.1.0
 */
export class TlsError extends Schema.TaggedError<TlsError>("effect-nats/NatsError/TlsError")("TlsError", Common) {
  /** @since 0.1.0 */
  readonly [ReasonTypeId] = ReasonTypeId
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return false
  }
}

/**
 * The server refused the credentials (or their absence). Not retryable.
 *
 * @category reasons
 * @since 0.1.0
 */
export class AuthorizationViolation
  extends Schema.TaggedError<AuthorizationViolation>("effect-nats/NatsError/AuthorizationViolation")(
    "AuthorizationViolation",
    Common
  )
{
  /** @since 0.1.0 */
  readonly [ReasonTypeId] = ReasonTypeId
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return false
  }
}

/**
 * The user may not publish to or subscribe to the subject. Not retryable.
 *
 * @category reasons
 * @since 0.1.0
 */
export class PermissionViolation
  extends Schema.TaggedError<PermissionViolation>("effect-nats/NatsError/PermissionViolation")("PermissionViolation", {
    ...Common,
    queue: Schema.optional(Schema.String)
  })
{
  /** @since 0.1.0 */
  readonly [ReasonTypeId] = ReasonTypeId
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return false
  }
}

/**
 * The subject (or pattern) is not valid for the operation: empty tokens,
 * whitespace, or wildcards where they are not allowed. Detected before
 * anything is sent.
 *
 * @category reasons
 * @since 0.1.0
 */
export class InvalidSubject extends Schema.TaggedError<InvalidSubject>("effect-nats/NatsError/InvalidSubject")(
  "InvalidSubject",
  Common
) {
  /** @since 0.1.0 */
  readonly [ReasonTypeId] = ReasonTypeId
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return false
  }
}

/**
 * The payload (with headers) is larger than the server's `max_payload`.
 * Detected before anything is sent.
 *
 * @category reasons
 * @since 0.1.0
 */
export class MaxPayloadExceeded
  extends Schema.TaggedError<MaxPayloadExceeded>("effect-nats/NatsError/MaxPayloadExceeded")("MaxPayloadExceeded", {
    ...Common,
    size: Schema.Number,
    maxPayload: Schema.Number
  })
{
  /** @since 0.1.0 */
  readonly [ReasonTypeId] = ReasonTypeId
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return false
  }
}

/**
 * The server refused a connection or a subscription at a limit of the
 * account or the user (`max_connections`, `max_subscriptions`, the JWT's
 * `conn` / `subs`): `limit` says which, `message` carries the server's words.
 * Not retryable: it succeeds only once the account has room again (another
 * connection closed, a subscription ended). An account's payload limit is
 * `MaxPayloadExceeded`; its JetStream storage limits are `JetStreamApi` with
 * the server's code and words (for example 10028, insufficient memory
 * resources available).
 *
 * @category reasons
 * @since 0.1.0
 */
export class LimitExceeded extends Schema.TaggedError<LimitExceeded>("effect-nats/NatsError/LimitExceeded")(
  "LimitExceeded",
  {
    ...Common,
    limit: Schema.Literals(["connections", "subscriptions"])
  }
) {
  /** @since 0.1.0 */
  readonly [ReasonTypeId] = ReasonTypeId
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return false
  }
}

/**
 * A subscription's bounded buffer overflowed under the `"fail"` overflow
 * policy: the consumer did not keep up with the server.
 *
 * @category reasons
 * @since 0.1.0
 */
export class SlowConsumer extends Schema.TaggedError<SlowConsumer>("effect-nats/NatsError/SlowConsumer")(
  "SlowConsumer",
  {
    ...Common,
    bufferSize: Schema.optional(Schema.Number)
  }
) {
  /** @since 0.1.0 */
  readonly [ReasonTypeId] = ReasonTypeId
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return false
  }
}

/**
 * An invalid argument or option was given (for example a non positive
 * timeout). Not retryable.
 *
 * @category reasons
 * @since 0.1.0
 */
export class InvalidArgument extends Schema.TaggedError<InvalidArgument>("effect-nats/NatsError/InvalidArgument")(
  "InvalidArgument",
  Common
) {
  /** @since 0.1.0 */
  readonly [ReasonTypeId] = ReasonTypeId
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return false
  }
}

/**
 * A responder answered with an error (the `Nats-Service-Error` /
 * `Nats-Service-Error-Code` headers of NATS services): for example it could
 * not decode the request (400) or its handler died (500). Retryable for codes
 * 500 and above.
 *
 * @category reasons
 * @since 0.1.0
 */
export class ServiceError extends Schema.TaggedError<ServiceError>("effect-nats/NatsError/ServiceError")(
  "ServiceError",
  {
    ...Common,
    code: Schema.Number
  }
) {
  /** @since 0.1.0 */
  readonly [ReasonTypeId] = ReasonTypeId
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return this.code >= 500
  }
}

/**
 * JetStream is not enabled on the server or for the account.
 *
 * @category reasons
 * @since 0.1.0
 */
export class JetStreamNotEnabled
  extends Schema.TaggedError<JetStreamNotEnabled>("effect-nats/NatsError/JetStreamNotEnabled")(
    "JetStreamNotEnabled",
    Common
  )
{
  /** @since 0.1.0 */
  readonly [ReasonTypeId] = ReasonTypeId
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return false
  }
}

/**
 * The JetStream stream does not exist (`stream` names it when known). Not retryable as such;
 * a consumer may recover by a schedule that recreates it.
 *
 * @category reasons
 * @since 0.1.0
 */
export class StreamNotFound extends Schema.TaggedError<StreamNotFound>("effect-nats/NatsError/StreamNotFound")(
  "StreamNotFound",
  {
    ...Common,
    stream: Schema.optional(Schema.String)
  }
) {
  /** @since 0.1.0 */
  readonly [ReasonTypeId] = ReasonTypeId
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return false
  }
}

/**
 * The JetStream consumer does not exist (or was deleted).
 *
 * @category reasons
 * @since 0.1.0
 */
export class ConsumerNotFound extends Schema.TaggedError<ConsumerNotFound>("effect-nats/NatsError/ConsumerNotFound")(
  "ConsumerNotFound",
  {
    ...Common,
    stream: Schema.optional(Schema.String),
    consumer: Schema.optional(Schema.String)
  }
) {
  /** @since 0.1.0 */
  readonly [ReasonTypeId] = ReasonTypeId
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return false
  }
}

/**
 * A JetStream publish went to a subject that no stream captures (nats.js reports this
 * misleadingly as "jetstream is not enabled").
 *
 * @category reasons
 * @since 0.1.0
 */
export class NoStreamForSubject
  extends Schema.TaggedError<NoStreamForSubject>("effect-nats/NatsError/NoStreamForSubject")(
    "NoStreamForSubject",
    Common
  )
{
  /** @since 0.1.0 */
  readonly [ReasonTypeId] = ReasonTypeId
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return false
  }
}

/**
 * A Key-Value `create` found the key holding a value (`revision`: its
 * revision, when it could be read). Not retryable: read it, or `update` it.
 *
 * @category reasons
 * @since 0.1.0
 */
export class KeyExists extends Schema.TaggedError<KeyExists>("effect-nats/NatsError/KeyExists")("KeyExists", {
  ...Common,
  bucket: Schema.String,
  key: Schema.String,
  revision: Schema.optional(Schema.Number)
}) {
  /** @since 0.1.0 */
  readonly [ReasonTypeId] = ReasonTypeId
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return false
  }
}

/**
 * A Key-Value `update` (compare-and-set) expected revision `expected` of the
 * key, but it had changed (`current`: its revision now, when it could be
 * read; absent when the key has no value). Not retryable as such: read the
 * key again and decide.
 *
 * @category reasons
 * @since 0.1.0
 */
export class WrongRevision extends Schema.TaggedError<WrongRevision>("effect-nats/NatsError/WrongRevision")(
  "WrongRevision",
  {
    ...Common,
    bucket: Schema.String,
    key: Schema.String,
    expected: Schema.Number,
    current: Schema.optional(Schema.Number)
  }
) {
  /** @since 0.1.0 */
  readonly [ReasonTypeId] = ReasonTypeId
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return false
  }
}

/**
 * An Object Store has no object of that name (never put, or deleted).
 *
 * @category reasons
 * @since 0.1.0
 */
export class ObjectNotFound extends Schema.TaggedError<ObjectNotFound>("effect-nats/NatsError/ObjectNotFound")(
  "ObjectNotFound",
  { ...Common, bucket: Schema.String, name: Schema.String }
) {
  /** @since 0.1.0 */
  readonly [ReasonTypeId] = ReasonTypeId
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return false
  }
}

/**
 * An object read back did not match what was stored: its SHA-256 digest
 * differs from the one recorded when it was put, or its chunks do not add up
 * to its size (a chunk lost or altered). Its bytes were not handed out as
 * complete. Not retryable: the stored object is damaged.
 *
 * @category reasons
 * @since 0.1.0
 */
export class DigestMismatch extends Schema.TaggedError<DigestMismatch>("effect-nats/NatsError/DigestMismatch")(
  "DigestMismatch",
  {
    ...Common,
    bucket: Schema.String,
    name: Schema.String,
    expected: Schema.String,
    computed: Schema.optional(Schema.String)
  }
) {
  /** @since 0.1.0 */
  readonly [ReasonTypeId] = ReasonTypeId
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return false
  }
}

/**
 * A publish expectation failed: the stream's (or subject's) last sequence, or last
 * message id, was not the expected one.
 *
 * @category reasons
 * @since 0.1.0
 */
export class WrongLastSequence extends Schema.TaggedError<WrongLastSequence>("effect-nats/NatsError/WrongLastSequence")(
  "WrongLastSequence",
  {
    ...Common,
    code: Schema.optional(Schema.Number),
    errCode: Schema.optional(Schema.Number)
  }
) {
  /** @since 0.1.0 */
  readonly [ReasonTypeId] = ReasonTypeId
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return false
  }
}

/**
 * The JetStream API answered with an error (`code` is the HTTP-like status, `errCode` the
 * JetStream error code); `field` names the configuration field a create-or-update could not change.
 *
 * @category reasons
 * @since 0.1.0
 */
export class JetStreamApi extends Schema.TaggedError<JetStreamApi>("effect-nats/NatsError/JetStreamApi")(
  "JetStreamApi",
  {
    ...Common,
    code: Schema.Number,
    errCode: Schema.Number,
    field: Schema.optional(Schema.String)
  }
) {
  /** @since 0.1.0 */
  readonly [ReasonTypeId] = ReasonTypeId
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return this.code === 503 || this.code === 408
  }
}

/**
 * The server sent a protocol error, or a failure did not fit another reason.
 *
 * @category reasons
 * @since 0.1.0
 */
export class Unknown extends Schema.TaggedError<Unknown>("effect-nats/NatsError/Unknown")("Unknown", Common) {
  /** @since 0.1.0 */
  readonly [ReasonTypeId] = ReasonTypeId
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return false
  }
}

/**
 * Every reason a `NatsError` can carry.
 *
 * @category models
 * @since 0.1.0
 */
export type NatsErrorReason =
  | Timeout
  | NoResponders
  | ConnectionClosed
  | Disconnected
  | ConnectionRefused
  | Draining
  | AuthorizationViolation
  | TlsError
  | PermissionViolation
  | InvalidSubject
  | MaxPayloadExceeded
  | LimitExceeded
  | SlowConsumer
  | InvalidArgument
  | ServiceError
  | JetStreamNotEnabled
  | StreamNotFound
  | ConsumerNotFound
  | NoStreamForSubject
  | WrongLastSequence
  | KeyExists
  | WrongRevision
  | ObjectNotFound
  | DigestMismatch
  | JetStreamApi
  | Unknown

/**
 * Schema of every reason a `NatsError` can carry.
 *
 * @category schemas
 * @since 0.1.0
 */
export const NatsErrorReason: Schema.Union<[
  typeof Timeout,
  typeof NoResponders,
  typeof ConnectionClosed,
  typeof Disconnected,
  typeof ConnectionRefused,
  typeof Draining,
  typeof AuthorizationViolation,
  typeof TlsError,
  typeof PermissionViolation,
  typeof InvalidSubject,
  typeof MaxPayloadExceeded,
  typeof LimitExceeded,
  typeof SlowConsumer,
  typeof InvalidArgument,
  typeof ServiceError,
  typeof JetStreamNotEnabled,
  typeof StreamNotFound,
  typeof ConsumerNotFound,
  typeof NoStreamForSubject,
  typeof WrongLastSequence,
  typeof KeyExists,
  typeof WrongRevision,
  typeof ObjectNotFound,
  typeof DigestMismatch,
  typeof JetStreamApi,
  typeof Unknown
]> = Schema.Union([
  Timeout,
  NoResponders,
  ConnectionClosed,
  Disconnected,
  ConnectionRefused,
  Draining,
  AuthorizationViolation,
  TlsError,
  PermissionViolation,
  InvalidSubject,
  MaxPayloadExceeded,
  LimitExceeded,
  SlowConsumer,
  InvalidArgument,
  ServiceError,
  JetStreamNotEnabled,
  StreamNotFound,
  ConsumerNotFound,
  NoStreamForSubject,
  WrongLastSequence,
  KeyExists,
  WrongRevision,
  ObjectNotFound,
  DigestMismatch,
  JetStreamApi,
  Unknown
])

/**
 * The error of every effect-nats operation. Match on `reason._tag` (or use
 * `Effect.catchReason("NatsError", "Timeout", ...)`).
 *
 * @category errors
 * @since 0.1.0
 */
export class NatsError extends Schema.TaggedError<NatsError>("effect-nats/NatsError")("NatsError", {
  reason: NatsErrorReason
}) {
  /** @since 0.1.0 */
  readonly [TypeId] = TypeId

  /** @since 0.1.0 */
  override readonly cause = this.reason

  /** @since 0.1.0 */
  override get message(): string {
    const { message, subject } = this.reason
    const text = message ?? this.reason._tag
    return subject === undefined || text.includes(subject) ? text : `${text} (subject: ${subject})`
  }

  /**
   * Whether retrying the operation may succeed.
   *
   * @since 0.1.0
   */
  get isRetryable(): boolean {
    return this.reason.isRetryable
  }
}

/**
 * Returns `true` when a value is a `NatsError`.
 *
 * @category guards
 * @since 0.1.0
 */
export const isNatsError = (u: unknown): u is NatsError => Predicate.hasProperty(u, TypeId)

/**
 * Returns `true` when a value is a `NatsErrorReason`.
 *
 * @category guards
 * @since 0.1.0
 */
export const isNatsErrorReason = (u: unknown): u is NatsErrorReason => Predicate.hasProperty(u, ReasonTypeId)
