/**
 * Duration helpers shared by the services.
 *
 * @internal
 */
import { Duration } from "effect"

/** Milliseconds of a `Duration.Input` (what nats.js options take). */
export const millis = (d: Duration.Input): number => Duration.toMillis(Duration.fromInputUnsafe(d))
