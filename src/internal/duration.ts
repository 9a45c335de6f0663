/**
 * Duration helpers shared by the services.
 *
 * @internal
 */
import { Duration } from "effect"

/** Milliseconds of a `Duration.Input` (what nats.js options take). Numbers are milliseconds already. */
export const millis = (d: Duration.Input): number =>
  typeof d === "number" && d >= 0 ? d : Duration.toMillis(Duration.fromInputUnsafe(d))

/** Nanoseconds of a Duration, as the number JetStream's wire format takes. */
export const nanos = (d: Duration.Duration): number => Number(Duration.toNanosUnsafe(d))

/** A Duration from JetStream's nanoseconds. */
export const fromNanos = (n: number): Duration.Duration => Duration.nanos(BigInt(Math.round(n)))
