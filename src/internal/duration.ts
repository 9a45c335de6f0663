/**
 * Duration helpers shared by the services.
 *
 * @internal
 */
import { Duration } from "effect"

/** Milliseconds of a `Duration.Input` (what nats.js options take). */
export const millis = (d: Duration.Input): number => Duration.toMillis(Duration.fromInputUnsafe(d))

/** Nanoseconds of a Duration, as the number JetStream's wire format takes. */
export const nanos = (d: Duration.Duration): number => Number(Duration.toNanosUnsafe(d))

/** A Duration from JetStream's nanoseconds. */
export const fromNanos = (n: number): Duration.Duration => Duration.nanos(BigInt(Math.round(n)))
