/**
 * What is checked before anything is sent: subjects (with a cache of those
 * already valid), subscription patterns, queue groups, buffer sizes and
 * message sizes. Every check returns the failure, or `undefined` when the
 * input may go: the hot paths allocate nothing when it is valid.
 *
 * @internal
 */
import type { MsgHdrs, MsgHdrsImpl, Payload } from "@nats-io/nats-core"
import { Duration, Option, Result } from "effect"
import type * as NatsError from "../schemas/NatsError.ts"
import * as Subject from "../schemas/Subject.ts"
import { invalidArgument, invalidSubject, maxPayloadExceeded } from "./errors.ts"

/** Subjects remembered as valid, at most; the cache is cleared when full. */
const CACHE_SIZE = 4096

export interface Validation {
  /** A publish subject (also a reply subject); valid ones are remembered. */
  readonly subject: (subject: string, operation: string) => NatsError.NatsError | undefined
  /** A subscription subject (`*`, `>` allowed). */
  readonly pattern: (pattern: string, operation: string) => NatsError.NatsError | undefined
  /** A queue group name, when given. */
  readonly queue: (subject: string, queue: string | undefined, operation: string) => NatsError.NatsError | undefined
  /** Positive integer counts (`bufferSize`, `maxBytes`, ...), when given. */
  readonly counts: (
    operation: string,
    subject: string | undefined,
    counts: Readonly<Record<string, number | undefined>>
  ) => NatsError.NatsError | undefined
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
export const payloadSize = (payload: Payload | undefined): number =>
  payload === undefined ? 0 : typeof payload === "string" ? Buffer.byteLength(payload) : payload.length

const queueProblem = (queue: string): string | undefined => {
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

/** The checks of one connection, against its server's `max_payload`. */
export const make = (maxPayload: () => number): Validation => {
  const valid = new Set<string>()

  const subject = (s: string, operation: string): NatsError.NatsError | undefined => {
    if (valid.has(s)) return undefined
    const problem = Subject.validateSubject(s)
    if (problem !== undefined) return invalidSubject(operation, s, problem)
    if (valid.size >= CACHE_SIZE) valid.clear()
    valid.add(s)
    return undefined
  }

  const pattern = (p: string, operation: string): NatsError.NatsError | undefined => {
    const problem = Subject.validatePattern(p)
    return problem === undefined ? undefined : invalidSubject(operation, p, problem)
  }

  const queue = (s: string, q: string | undefined, operation: string): NatsError.NatsError | undefined => {
    const problem = q === undefined ? undefined : queueProblem(q)
    return problem === undefined
      ? undefined
      : invalidArgument(operation, `invalid queue group ${JSON.stringify(q)}: ${problem}`, { subject: s })
  }

  const size = (
    s: string,
    payload: Payload | undefined,
    headers: MsgHdrs | undefined,
    operation: string
  ): NatsError.NatsError | undefined => {
    const max = maxPayload()
    const bytes = payloadSize(payload)
    // without headers the payload's size decides (no encoding)
    if (headers === undefined && bytes <= max) return undefined
    const total = bytes + (headers === undefined ? 0 : (headers as MsgHdrsImpl).encode().length)
    return total > max ? maxPayloadExceeded(operation, s, total, max) : undefined
  }

  return {
    subject,
    pattern,
    queue,
    counts,
    size,
    message: (s, payload, headers, operation) => subject(s, operation) ?? size(s, payload, headers, operation),
    maxPayload
  }
}
