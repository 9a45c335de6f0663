/**
 * Calls into a user's code that should return an Effect (handlers, decode
 * failure policies): a throw, or a value that is not an Effect (a Promise
 * from plain JavaScript, say), is a defect of that one call, which the
 * caller handles like any other failure of it; it never breaks the fiber
 * that made the call.
 *
 * @internal
 */
import { Effect } from "effect"

const describe = (u: unknown): string =>
  u === null
    ? "null"
    : typeof u === "object"
    ? (u instanceof Promise ? "a Promise" : `an object (${Object.prototype.toString.call(u)})`)
    : typeof u

/** The Effect `f` returns; `what` names the function in the defect. */
export const effectOf = <A, E, R>(what: string, f: () => Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.suspend(() => effectNow(what, f))

/**
 * `effectOf`, with `f` called now: for a caller that runs the result at
 * once (a hot path saves the suspension).
 */
export const effectNow = <A, E, R>(what: string, f: () => Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => {
  let result: unknown
  try {
    result = f()
  } catch (defect) {
    return Effect.die(defect)
  }
  return Effect.isEffect(result)
    ? result as Effect.Effect<A, E, R>
    : Effect.die(new TypeError(`${what} returned ${describe(result)}, not an Effect`))
}
