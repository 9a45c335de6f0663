/**
 * Core publishing: one message (validated, never throwing), and many
 * messages with pipelined flush checkpoints so that a fast producer cannot
 * outrun the socket without bound.
 *
 * @internal
 */
import type { MsgHdrs, Payload } from "@nats-io/nats-core"
import { InvalidArgumentError } from "@nats-io/nats-core"
import type { Tracer } from "effect"
import { Effect, Stream } from "effect"
import * as NatsError from "../schemas/NatsError.ts"
import type { OutgoingMessage, PublishAllOptions, PublishOptions } from "../services/NatsClient.ts"
import type { NatsCore } from "./core.ts"
import { fromUnknown, invalidArgument } from "./errors.ts"
import * as Metrics from "./metrics.ts"
import * as TraceContext from "./traceContext.ts"
import { headers as checkedHeaders } from "./validation.ts"
import { WireBatch } from "./wireBatch.ts"

/** Default messages between two checkpoints of `publishAll`. */
const FLUSH_EVERY = 16_384

/** The publishing functions of one connection. */
export interface Publisher {
  /** Publishes now; returns the failure instead of throwing it. */
  readonly publishNow: (
    subject: string,
    payload: Payload | undefined,
    options: PublishOptions | undefined
  ) => NatsError.NatsError | undefined
  /**
   * Publishes many messages (an iterable or a Stream) with the cost of one
   * Effect per batch, a checkpoint every `flushEvery` messages. Stops at the
   * first failure (messages before it were sent).
   */
  readonly publishAll: <E = never, R = never>(
    messages: Iterable<OutgoingMessage> | Stream.Stream<OutgoingMessage, E, R>,
    options: PublishAllOptions | undefined
  ) => Effect.Effect<void, NatsError.NatsError | E, R>
}

/**
 * Pipelined checkpoints: `checkpoint` sends a flush and awaits the previous
 * one, so the socket never runs dry while at most two batches are
 * unconfirmed; `last` awaits the flush in flight (and reports its failure).
 * A flush's promise never rejects unobserved.
 */
const checkpoints = (core: NatsCore) => {
  let inFlight: Promise<NatsError.NatsError | undefined> | undefined
  const settled = (promise: Promise<NatsError.NatsError | undefined>) =>
    Effect.flatMap(Effect.promise(() => promise), (error) => error === undefined ? Effect.void : Effect.fail(error))
  return {
    checkpoint: Effect.suspend(() => {
      const previous = inFlight
      inFlight = core.connection.flush().then(
        () => undefined,
        (cause: unknown) => fromUnknown(cause, { operation: "flush" })
      )
      return previous === undefined ? Effect.void : settled(previous)
    }),
    last: Effect.suspend(() => inFlight === undefined ? Effect.void : settled(inFlight))
  }
}

type PublishOne = (m: OutgoingMessage) => NatsError.NatsError | undefined

const publishBatch = (messages: Iterable<OutgoingMessage>, one: PublishOne): NatsError.NatsError | undefined => {
  for (const m of messages) {
    const failed = one(m)
    if (failed !== undefined) return failed
  }
  return undefined
}

/**
 * The messages a batch can carry go into it (see `WireBatch`); any other
 * is published on its own, after what the batch holds (the order kept).
 */
const batched = (core: NatsCore, batch: WireBatch, alone: PublishOne): PublishOne => {
  const nc = core.connection
  const validSubject = core.validation.subject
  return (m) => {
    const payload = m.payload
    if (
      m.reply !== undefined || m.headers !== undefined ||
      !(payload === undefined || typeof payload === "string" || payload instanceof Uint8Array) ||
      batch.refused(nc)
    ) {
      batch.send()
      return alone(m)
    }
    const invalid = validSubject(m.subject, "publish")
    if (invalid !== undefined) return invalid
    const written = batch.add(m.subject, payload)
    if (written > (nc.info?.max_payload ?? 1024 * 1024)) {
      // refused as nats.js would (the error says by how much)
      batch.undo(written)
      batch.send()
      return alone(m)
    }
    return undefined
  }
}

/** Publishes `messages`: a checkpoint every `flushEvery`, the batch (when there is one) sent before each. */
const run = <E, R>(
  core: NatsCore,
  messages: Iterable<OutgoingMessage> | Stream.Stream<OutgoingMessage, E, R>,
  flushEvery: number,
  send: PublishOne,
  tally: Metrics.PublishTally,
  batch: WireBatch | undefined
): Effect.Effect<void, NatsError.NatsError | E, R> => {
  const publishOne = batch === undefined ? send : batched(core, batch, send)
  const one: PublishOne = (m) => {
    const failed = publishOne(m)
    if (failed === undefined) tally.add(m.subject, m.payload, m.destination)
    return failed
  }
  // what the batch holds goes out before each checkpoint (its flush confirms it) and at a failure
  const sendBatch = batch === undefined ? () => {} : () => batch.send()
  const failing = (error: NatsError.NatsError) => {
    sendBatch()
    return Effect.fail(error)
  }
  // the counts go to the metrics at every checkpoint, and at the end whatever it is
  const counted = <A, E2, R2>(effect: Effect.Effect<A, E2, R2>) =>
    Effect.ensuring(effect, Effect.sync(() => tally.flush()))
  const points = checkpoints(core)
  const checkpoint = counted(points.checkpoint)
  const last = counted(points.last)
  if (!Stream.isStream(messages)) {
    const iterator = messages[Symbol.iterator]()
    // up to flushEvery messages, then a checkpoint
    const loop: Effect.Effect<void, NatsError.NatsError> = Effect.suspend(() => {
      for (let i = 0; i < flushEvery; i++) {
        const next = iterator.next()
        if (next.done === true) {
          sendBatch()
          return last
        }
        const failed = one(next.value)
        if (failed !== undefined) return failing(failed)
      }
      sendBatch()
      return Effect.andThen(checkpoint, loop)
    })
    return loop
  }
  let sinceFlush = 0
  return Stream.runForEachArray(messages, (chunk) => {
    const failed = publishBatch(chunk, one)
    if (failed !== undefined) return failing(failed)
    // a chunk at a time to the socket: the next chunk may take a while
    sendBatch()
    sinceFlush += chunk.length
    if (sinceFlush < flushEvery) return Effect.void
    sinceFlush = 0
    return checkpoint
  }).pipe(Effect.andThen(last))
}

/** The publisher of a connection (its parts bound once: the hot path reads no object per message). */
export const make = (core: NatsCore): Publisher => {
  const nc = core.connection
  const { reply: validReply, size, subject: validSubject } = core.validation

  const publishNow = (
    subject: string,
    payload: Payload | undefined,
    options: PublishOptions | undefined
  ): NatsError.NatsError | undefined => {
    const invalid = validSubject(subject, "publish")
    if (invalid !== undefined) return invalid
    if (payload !== undefined && typeof payload !== "string" && !(payload instanceof Uint8Array)) {
      return size(subject, payload, undefined, "publish")
    }
    let natsOptions: { headers?: MsgHdrs; reply?: string } | undefined
    if (options !== undefined) {
      if (options.reply !== undefined) {
        const invalidReply = validReply(subject, options.reply, "publish")
        if (invalidReply !== undefined) return invalidReply
        natsOptions = { reply: options.reply }
      }
      if (options.headers !== undefined) {
        const hdrs = checkedHeaders(options.headers, subject, "publish")
        if (NatsError.isNatsError(hdrs)) return hdrs
        natsOptions ??= {}
        if (hdrs !== undefined) natsOptions.headers = hdrs
      }
    }
    try {
      // nats.js checks max_payload (headers included) before anything is
      // sent; the size is only computed for the error.
      nc.publish(subject, payload, natsOptions)
      return undefined
    } catch (cause) {
      return (cause instanceof InvalidArgumentError && cause.message.includes("max_payload")
        ? size(subject, payload, natsOptions?.headers, "publish")
        : undefined) ?? fromUnknown(cause, { operation: "publish", subject })
    }
  }

  const plain: PublishOne = (m) => publishNow(m.subject, m.payload, m)
  // one batch for every untraced publishAll of the connection (its subjects' bytes kept): each run
  // empties it before it yields, so runs never share what it holds
  const untraced = WireBatch.of(nc)

  /**
   * Publishes carrying the batch span: a message without headers shares one
   * header block (nats.js encodes it, never changes it); one with headers
   * gets a copy with the `traceparent` added.
   */
  const tracedPublish = (span: Tracer.Span, shared: MsgHdrs): PublishOne => {
    return (m) =>
      publishNow(m.subject, m.payload, {
        ...m,
        headers: m.headers === undefined ? shared : TraceContext.withSpan(m.headers, span)
      })
  }

  const publishAll = <E = never, R = never>(
    messages: Iterable<OutgoingMessage> | Stream.Stream<OutgoingMessage, E, R>,
    options: PublishAllOptions | undefined
  ): Effect.Effect<void, NatsError.NatsError | E, R> =>
    Effect.withFiber((fiber) => {
      const flushEvery = options?.flushEvery ?? FLUSH_EVERY
      if (!(Number.isSafeInteger(flushEvery) && flushEvery >= 1)) {
        return Effect.fail(
          invalidArgument("publishAll", `flushEvery must be a positive integer, got ${String(flushEvery)}`)
        )
      }
      const tally = new Metrics.PublishTally(fiber.context)
      const flushed = Effect.sync(() => tally.flush())
      // no span in the caller: no span here, no header added
      if (fiber.cache.span === undefined) {
        return Effect.onError(run(core, messages, flushEvery, plain, tally, untraced), () => flushed)
      }
      return Effect.useSpan("publish", { kind: "producer", attributes: TraceContext.batchAttributes }, (span) => {
        // the messages without headers of a traced batch share one header block: encoded once
        const shared = TraceContext.withSpan(undefined, span) as MsgHdrs
        const batch = WireBatch.of(nc, (shared as unknown as { encode(): Uint8Array }).encode())
        return Effect.onError(run(core, messages, flushEvery, tracedPublish(span, shared), tally, batch), () => flushed)
      })
    })

  return { publishNow, publishAll }
}
