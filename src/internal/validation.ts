/**
 * What is checked before anything is sent: subjects (with a cache of those
 * already valid), subscription patterns, queue groups, the length of the
 * protocol line they make, headers, buffer sizes and message sizes. Every check returns the failure, or `undefined` when the
 * input may go: the hot paths allocate nothing when it is valid.
 *
 * @internal
 */
import type { MsgHdrs, MsgHdrsImpl, Payload } from "@nats-io/nats-core"
import { Duration, Option, Result } from "effect"
import * as Headers from "../schemas/Headers.ts"
import type * as NatsError from "../schemas/NatsError.ts"
import * as Subject from "../schemas/Subject.ts"
import { invalidArgument, invalidSubject, maxPayloadExceeded } from "./errors.ts"

/** Subjects remembered as valid, at most; the cache is cleared when full. */
const CACHE_SIZE = 4096

/**
 * Bytes a protocol line (`PUB subject reply size`, `SUB subject queue sid`)
 * may give to its subjects and names: nats-server's `max_control_line`
 * (4096 by default) less room for the verb and the numbers. A longer line
 * makes the server drop the connection ("maximum control line exceeded").
 */
export const MAX_CONTROL_BYTES = 4096 - 64

/** What is wrong with a payload's type, if anything (plain JavaScript can pass anything). */
export const payloadProblem = (payload: unknown): string | undefined =>
  payload === undefined || typeof payload === "string" || payload instanceof Uint8Array
    ? undefined
    : `a payload must be a string or a Uint8Array, got ${payload === null ? "null" : typeof payload}`

/** UTF-8 bytes of a string, computed only when its length leaves room for doubt. */
const bytesOver = (s: string, limit: number): boolean => s.length * 3 > limit && Buffer.byteLength(s) > limit

/** The problem with names that share one protocol line, if together they are too long. */
const lineProblem = (names: ReadonlyArray<string>): string | undefined => {
  let total = 0
  for (const name of names) total += name.length
  if (total * 3 <= MAX_CONTROL_BYTES) return undefined
  let bytes = 0
  for (const name of names) bytes += Buffer.byteLength(name)
  return bytes > MAX_CONTROL_BYTES
    ? `too long (${bytes} bytes on one protocol line; at most ${MAX_CONTROL_BYTES} fit the server's max_control_line)`
    : undefined
}

/**
 * Headers checked and converted (`undefined` when none are given): names of
 * printable ASCII without ':' (not empty), values without CR or LF.
 */
export const headers = (
  init: Headers.HeadersInit | undefined,
  subject: string,
  operation: string
): MsgHdrs | NatsError.NatsError | undefined => {
  if (init === undefined) return undefined
  const problem = Headers.validate(init)
  return problem === undefined
    ? Headers.fromInit(init)
    : invalidArgument(operation, `invalid headers on ${subject}: ${problem}`, { subject })
}

export interface Validation {
  /** A publish subject (also a reply subject); valid ones are remembered. */
  readonly subject: (subject: string, operation: string) => NatsError.NatsError | undefined
  /** A reply subject for `subject`: valid, and the two fit on one protocol line. */
  readonly reply: (subject: string, reply: string, operation: string) => NatsError.NatsError | undefined
  /** A subscription subject (`*`, `>` allowed). */
  readonly pattern: (pattern: string, operation: string) => NatsError.NatsError | undefined
  /** A queue group name, when given (with the subject, it must fit on one protocol line). */
  readonly queue: (subject: string, queue: string | undefined, operation: string) => NatsError.NatsError | undefined
  /** The size of a message (payload plus encoded headers) against the server's `max_payload`. */
  readonly size: (
    subject: string,
    payload: Payload | undefined,
    headers: MsgHdrs | undefined,
    operation: string
  ) => NatsError.NatsError | undefined
  /** A message to publish: its subject, then its size. */
  readonly message: (
    subject: string,
    payload: Payload | undefined,
    headers: MsgHdrs | undefined,
    operation: string
  ) => NatsError.NatsError | undefined
  /** The server's `max_payload`. */
  readonly maxPayload: () => number
}

/** Bytes of a payload. */
const payloadSize = (payload: Payload | undefined): number =>
  payload === undefined ? 0 : typeof payload === "string" ? Buffer.byteLength(payload) : payload.length

const queueProblem = (queue: string): string | undefined => {
  if (typeof queue !== "string") return "must be a string"
  if (queue.length === 0) return "must not be empty"
  for (let i = 0; i < queue.length; i++) {
    const c = queue.charCodeAt(i)
    if (c <= 32 || c === 127) return "must not contain whitespace or control characters"
  }
  return undefined
}

/** Positive integer counts (`bufferSize`, `concurrency`, ...), when given. */
export const counts = (
  operation: string,
  subject: string | undefined,
  values: Readonly<Record<string, number | undefined>>
): NatsError.NatsError | undefined => {
  for (const name of Object.keys(values)) {
    const value = values[name]
    if (value !== undefined && !(Number.isSafeInteger(value) && value >= 1)) {
      const where = subject === undefined ? "" : ` (subject ${subject})`
      return invalidArgument(operation, `${name} must be a positive integer, got ${value}${where}`, { subject })
    }
  }
  return undefined
}

/**
 * A duration option, `fallback` when not given: it must be a valid
 * `Duration.Input`, finite, and positive (or, with `allowZero`, not negative).
 */
export const duration = (
  operation: string,
  name: string,
  input: Duration.Input | undefined,
  fallback: Duration.Input,
  allowZero = false
): Result.Result<Duration.Duration, NatsError.NatsError> => {
  const d = Option.getOrUndefined(Duration.fromInput(input ?? fallback))
  const valid = d !== undefined && Duration.isFinite(d) &&
    (allowZero ? !Duration.isNegative(d) : Duration.isGreaterThan(d, Duration.zero))
  return valid
    ? Result.succeed(d)
    : Result.fail(
      invalidArgument(
        operation,
        `${name} must be a finite${allowZero ? ", non-negative" : ", positive"} duration, got ${String(input)}`
      )
    )
}

/**
 * A timeout option in milliseconds (finite, positive), or why it is not
 * valid; a number is milliseconds already and is not parsed (hot paths).
 */
export const timeoutMillis = (
  operation: string,
  input: Duration.Input,
  name = "timeout"
): number | NatsError.NatsError => {
  if (typeof input === "number" && Number.isFinite(input) && input > 0) return input
  const checked = duration(operation, name, input, 0)
  return Result.isSuccess(checked) ? Duration.toMillis(checked.success) : checked.failure
}

/**
 * Duration options, when given: each a valid `Duration.Input`, finite, and
 * at least `minimum` (default: positive).
 */
export const durations = (
  operation: string,
  values: Readonly<Record<string, Duration.Input | undefined>>,
  minimum?: Duration.Input
): NatsError.NatsError | undefined => {
  const least = minimum === undefined ? undefined : Duration.fromInputUnsafe(minimum)
  for (const name of Object.keys(values)) {
    const input = values[name]
    if (input === undefined) continue
    const checked = duration(operation, name, input, 0, least !== undefined)
    if (Result.isFailure(checked)) return checked.failure
    if (least !== undefined && Duration.isLessThan(checked.success, least)) {
      return invalidArgument(operation, `${name} must be at least ${Duration.format(least)}, got ${String(input)}`)
    }
  }
  return undefined
}

/** The checks of one connection, against its server's `max_payload`. */
export const make = (maxPayload: () => number): Validation => {
  const valid = new Set<string>()

  const subject = (s: string, operation: string): NatsError.NatsError | undefined => {
    if (valid.has(s)) return undefined
    const problem = Subject.validateSubject(s) ??
      (bytesOver(s, MAX_CONTROL_BYTES) ? `Invalid subject: ${lineProblem([s])}` : undefined)
    if (problem !== undefined) return invalidSubject(operation, s, problem)
    if (valid.size >= CACHE_SIZE) valid.clear()
    valid.add(s)
    return undefined
  }

  const pattern = (p: string, operation: string): NatsError.NatsError | undefined => {
    const problem = Subject.validatePattern(p) ??
      (bytesOver(p, MAX_CONTROL_BYTES) ? `Invalid subject pattern: ${lineProblem([p])}` : undefined)
    return problem === undefined ? undefined : invalidSubject(operation, p, problem)
  }

  const queue = (s: string, q: string | undefined, operation: string): NatsError.NatsError | undefined => {
    const problem = q === undefined ? undefined : queueProblem(q) ?? lineProblem([s, q])
    return problem === undefined
      ? undefined
      : invalidArgument(operation, `invalid queue group ${JSON.stringify(q).slice(0, 64)}: ${problem}`, { subject: s })
  }

  const reply = (s: string, r: string, operation: string): NatsError.NatsError | undefined => {
    const invalid = subject(r, operation)
    if (invalid !== undefined) return invalid
    const problem = lineProblem([s, r])
    return problem === undefined ? undefined : invalidSubject(operation, r, `Invalid reply subject: ${problem}`)
  }

  const size = (
    s: string,
    payload: Payload | undefined,
    headers: MsgHdrs | undefined,
    operation: string
  ): NatsError.NatsError | undefined => {
    const wrongType = payloadProblem(payload)
    if (wrongType !== undefined) return invalidArgument(operation, `${wrongType} (subject ${s})`, { subject: s })
    const max = maxPayload()
    const bytes = payloadSize(payload)
    // without headers the payload's size decides (no encoding)
    if (headers === undefined && bytes <= max) return undefined
    const total = bytes + (headers === undefined ? 0 : (headers as MsgHdrsImpl).encode().length)
    return total > max ? maxPayloadExceeded(operation, s, total, max) : undefined
  }

  return {
    subject,
    reply,
    pattern,
    queue,
    size,
    message: (s, payload, headers, operation) => subject(s, operation) ?? size(s, payload, headers, operation),
    maxPayload
  }
}
