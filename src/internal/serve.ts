/**
 * Responders: a subscription whose messages are requests, answered by a
 * handler (in order, or `concurrency` at once), with a graceful stop.
 *
 * @internal
 */
import type { Msg, MsgHdrs, Payload } from "@nats-io/nats-core"
import type { Scope } from "effect"
import { Cause, Effect, Fiber, Option, Stream } from "effect"
import * as Headers from "../schemas/Headers.ts"
import type * as NatsError from "../schemas/NatsError.ts"
import type { Reply, ServeOptions } from "../services/NatsClient.ts"
import type { NatsCore } from "./core.ts"
import { connectionClosed } from "./errors.ts"
import { acquire } from "./subscription.ts"
import * as TraceContext from "./traceContext.ts"
import { effectOf } from "./userCode.ts"
import { counts, durations } from "./validation.ts"

const replyParts = (reply: Reply | void): { data: Payload | undefined; headers: MsgHdrs | undefined } => {
  if (reply === undefined) return { data: undefined, headers: undefined }
  if (typeof reply === "string" || reply instanceof Uint8Array) return { data: reply, headers: undefined }
  return { data: reply.data, headers: reply.headers === undefined ? undefined : Headers.fromInit(reply.headers) }
}

const headersProblem = (reply: Reply | void): string | undefined =>
  reply === undefined || typeof reply === "string" || reply instanceof Uint8Array || reply.headers === undefined
    ? undefined
    : Headers.validate(reply.headers)

const send = (msg: Msg, reply: Reply | void): void => {
  const { data, headers } = replyParts(reply)
  msg.respond(data, headers === undefined ? undefined : { headers })
}

/**
 * Runs the handler and answers: its reply, or the service error headers (500)
 * when it fails or dies. An interrupted handler sends nothing (the caller
 * times out). A failure to answer is logged.
 */
const respond = <E, R>(
  core: NatsCore,
  subject: string,
  handler: (msg: Msg) => Effect.Effect<Reply | void, E, R>,
  options: ServeOptions | undefined
) => {
  const what = `the handler for ${subject}`
  // a server span per request, the child of the requester's (when it sent one, or a tracer is installed)
  return (msg: Msg) =>
    answer(
      msg,
      subject,
      TraceContext.process(`process ${msg.subject}`, msg, {
        kind: "server",
        attributes: () =>
          TraceContext.attributes(core.connection, msg.subject, "process", "process", {
            ...(options?.queue === undefined ? {} : { "messaging.consumer.group.name": options.queue }),
            "messaging.message.body.size": msg.data.length
          }),
        relation: options?.traceParent
      }, effectOf(what, () => handler(msg)))
    )
}

const answer = <E, R>(msg: Msg, subject: string, handled: Effect.Effect<Reply | void, E, R>) =>
  handled.pipe(
    Effect.matchCauseEffect({
      onSuccess: (reply) => {
        const problem = headersProblem(reply)
        return problem === undefined
          ? Effect.sync(() => send(msg, reply))
          : Effect.logError(`nats: the reply of the handler for ${subject} has invalid headers: ${problem}`).pipe(
            Effect.andThen(
              Effect.sync(() => send(msg, { headers: Headers.serviceError(500, "invalid reply headers") }))
            )
          )
      },
      onFailure: (cause) =>
        Cause.hasInterruptsOnly(cause)
          ? Effect.void
          : Effect.logError(`nats: handler for ${subject} failed`, cause).pipe(
            Effect.andThen(Effect.sync(() => send(msg, { headers: Headers.serviceError(500, Cause.squash(cause)) })))
          )
    }),
    Effect.catchCause((cause) => Effect.logError(`nats: could not reply on ${subject}`, cause))
  )

/**
 * Answers requests on a subject until the scope closes; returns once the
 * subscription is registered on the server. Closing the scope stops intake
 * and answers what was already received (within `gracePeriod`). The returned
 * fiber completes when the responder was stopped that way, and fails with
 * `ConnectionClosed` if it stopped because the connection closed.
 */
export const serve = <E, R>(
  core: NatsCore,
  subject: string,
  handler: (msg: Msg) => Effect.Effect<Reply | void, E, R>,
  options: ServeOptions | undefined
): Effect.Effect<Fiber.Fiber<void, NatsError.NatsError>, NatsError.NatsError, R | Scope.Scope> =>
  Effect.gen(function*() {
    const invalid = core.validation.pattern(subject, "serve") ??
      core.validation.queue(subject, options?.queue, "serve") ??
      counts("serve", subject, {
        bufferSize: options?.bufferSize,
        concurrency: options?.concurrency
      }) ??
      durations("serve", { gracePeriod: options?.gracePeriod }, 0)
    if (invalid !== undefined) return yield* invalid
    const requests = yield* acquire(core, subject, {
      queue: options?.queue,
      bufferSize: options?.bufferSize ?? 1024,
      maxBytes: 64 * 1024 * 1024,
      overflow: "dropNewest",
      // a request is answered on the stack that received it (no scheduler turn)
      eager: true
    })
    // registered on the server (or refused at the subscription limit) before serve returns
    yield* requests.confirmed
    let stopping = false
    const concurrency = options?.concurrency ?? 1
    const answer = respond(core, subject, handler, options)
    const run = (concurrency === 1
      ? Stream.runForEach(requests.messages, answer)
      : requests.messages.pipe(Stream.mapEffect(answer, { concurrency, unordered: true }), Stream.runDrain)).pipe(
        Effect.andThen(Effect.suspend(() =>
          stopping || core.bridge.isReleasing()
            ? Effect.void
            : Effect.fail(connectionClosed("serve", `responder on ${subject} stopped`, { subject }))
        ))
      )
    // Forked and given its finalizer in one uninterruptible step: the fiber never outlives the scope.
    return yield* Effect.uninterruptible(Effect.gen(function*() {
      const fiber = yield* Effect.forkDetach(run)
      // Graceful stop, before the subscription's own release: no new requests,
      // those buffered and in flight are answered within the grace period.
      yield* Effect.addFinalizer(() =>
        Effect.gen(function*() {
          stopping = true
          requests.stop()
          const done = yield* Fiber.await(fiber).pipe(Effect.timeoutOption(options?.gracePeriod ?? "10 seconds"))
          if (Option.isNone(done)) {
            yield* Effect.logWarning(`nats: responder on ${subject} did not finish within its grace period`)
            yield* Fiber.interrupt(fiber)
          }
        })
      )
      return fiber
    }))
  }).pipe(Effect.withSpan("NatsClient.serve", {
    attributes: { "messaging.system": "nats", "messaging.destination.name": subject }
  }))
