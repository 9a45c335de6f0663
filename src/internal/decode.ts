/**
 * The decode step between a source of raw messages (a subscription, a
 * JetStream consumer) and the user's Stream: each message decoded
 * synchronously, a chunk at a time, and a decode failure handled by the
 * caller's policy. One hostile message never stops the stream unless the
 * policy says so (codecs never throw: a stack overflow in a recursive Schema
 * is a `DecodeError` of that message like any other).
 *
 * @internal
 */
import { Effect, Result, Stream } from "effect"
import type * as Arr from "effect/Array"
import type * as Pull from "effect/Pull"
import * as Codec from "../schemas/Codec.ts"
import { effectOf } from "./userCode.ts"

/**
 * What happens to a message that does not decode: `"fail"` fails the stream
 * with its error (after emitting the messages decoded before it); a function
 * handles it (log, term, dead-letter...) and the stream goes on.
 */
export type Policy<M, R, F = Codec.DecodeError> = "fail" | ((error: F, msg: M) => Effect.Effect<void, never, R>)

/** A message to decode: nats.js core and JetStream messages both are. */
export interface Message {
  readonly data: Uint8Array
  /** Read only when the payload does not decode (nats.js decodes it on access). */
  readonly subject: string
}

/**
 * Decodes a message's payload with a codec (from `Codec.fromInput`: it never
 * throws); the error names the subject.
 */
export const payload = <A>(codec: Codec.Codec<A>, msg: Message): Result.Result<A, Codec.DecodeError> => {
  const decoded = codec.decode(msg.data)
  return Result.isSuccess(decoded) ? decoded : Result.fail(Codec.withSubject(decoded.failure, msg.subject))
}

/**
 * Decodes a Stream of raw messages into values (envelopes), a chunk at a
 * time: no Effect per message unless one fails to decode. (Any check of a
 * message that may fail it is a decode: an ordered read's, say.)
 */
export const decodeStream = <M, A, E, R, R2, F = Codec.DecodeError>(
  messages: Stream.Stream<M, E, R>,
  options: {
    /**
     * Decodes one message (with `payload`, for the user's codec) into `out`;
     * returns its failure instead (nothing is allocated per message but the
     * value).
     */
    readonly decode: (msg: M, out: Array<A>) => F | undefined
    readonly policy: Policy<M, R2, F>
  }
): Stream.Stream<A, E | F, R | R2> => {
  const { decode, policy } = options
  return Stream.transformPull(messages, (pull) => {
    // with "fail": the error to fail with once the values before it were emitted
    let pending: F | undefined
    const next: Pull.Pull<Arr.NonEmptyReadonlyArray<A>, E | F, void, R2> = Effect.gen(function*() {
      if (pending !== undefined) return yield* Effect.fail(pending)
      while (true) {
        const chunk = yield* pull
        const out: Array<A> = []
        for (const msg of chunk) {
          const failure = decode(msg, out)
          if (failure === undefined) continue
          if (policy === "fail") {
            if (out.length === 0) return yield* Effect.fail(failure)
            pending = failure
            return out as unknown as Arr.NonEmptyReadonlyArray<A>
          }
          // a policy that fails or dies stops the stream: the caller's own choice
          yield* effectOf("the onDecodeError handler", () => policy(failure, msg))
        }
        if (out.length > 0) return out as unknown as Arr.NonEmptyReadonlyArray<A>
      }
    })
    return Effect.succeed(next)
  })
}
