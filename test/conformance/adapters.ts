/**
 * The conformance suite's adapters over effect-nats: core NATS subscriptions, a JetStream durable pull
 * consumer, and the Processor. Each is a Layer of `Adapter` needing a `NatsClient` (the subscribers'
 * connection) and the `NatsServer` it runs on (publishers open their own connections; restarts).
 */
import { Cause, Context, Deferred, Duration, Effect, Exit, Fiber, Layer, Queue, Schedule, Stream } from "effect"
import type { JsEnvelope } from "../../src/index.ts"
import { Codec, Consumer, JetStream, JetStreamManager, NatsClient, NatsServer, Processor } from "../../src/index.ts"
import type { AdapterShape, Delivery, OutgoingMessage, Publisher } from "../../src/testing/Conformance.ts"
import { Adapter } from "../../src/testing/Conformance.ts"

/** The header that carries a message's id on core NATS (JetStream uses `Nats-Msg-Id`). */
const IdHeader = "Conformance-Id"

/** A connection of its own for a publisher, to every node of the server. */
const connection = NatsServer.NatsServer.use((server) => NatsClient.make({ servers: server.urls }))

/**
 * Restarts the node the subscribers' connection is on (the only node of a single server), so that the
 * subscribers have to reconnect.
 */
const restartConnectedNode = Effect.gen(function*() {
  const server = yield* NatsServer.NatsServer
  const nats = yield* NatsClient.NatsClient
  return Effect.suspend(() => {
    const port = nats.connection.info?.port
    const node = server.nodes.findIndex((n) => n.port === port)
    return server.restart(node < 0 ? 0 : node)
  })
})

// -----------------------------------------------------------------------------
// Core NATS
// -----------------------------------------------------------------------------

/**
 * Core NATS: publish (flushed) and `subscribeScoped` in a queue group. At most once: nothing is kept,
 * ack and nack do nothing.
 */
export const core: Layer.Layer<Adapter, never, NatsClient.NatsClient | NatsServer.NatsServer> = Layer.effect(
  Adapter,
  Effect.gen(function*() {
    const nats = yield* NatsClient.NatsClient
    const context = Context.pick(NatsServer.NatsServer)(yield* Effect.context<NatsServer.NatsServer>())
    const publisher: AdapterShape["publisher"] = Effect.gen(function*() {
      const client = yield* Effect.provideContext(connection, context)
      const pub: Publisher = {
        publish: (topic, messages) =>
          client.publishAll(
            messages.map((m) => ({ subject: topic, payload: m.payload, headers: { [IdHeader]: m.id } }))
          ).pipe(Effect.andThen(client.flush))
      }
      return pub
    })
    return Adapter.of({
      createTopic: () => Effect.void,
      publisher,
      subscribe: (topic, group) =>
        Effect.map(
          nats.subscribeScoped(topic, { queue: group }),
          Stream.map((msg): Delivery => ({
            id: msg.headers?.get(IdHeader) ?? "",
            payload: msg.data,
            ack: Effect.void,
            nack: Effect.void
          }))
        )
    })
  })
)

// -----------------------------------------------------------------------------
// JetStream
// -----------------------------------------------------------------------------

/** Options of the JetStream adapters. */
export interface JetStreamAdapterOptions {
  /** Replicas of each topic's stream (3 on a 3-node cluster). */
  readonly replicas: 1 | 3
  /** The consumers' ack wait. */
  readonly ackWait: Duration.Input
}

const subjectOf = (topic: string) => `${topic}.m`

/** A retried publish: every attempt bounded, a restart or an election waited out. */
const publishTimeout = "2 seconds"
const publishRetry = Schedule.spaced("250 millis").pipe(Schedule.upTo({ times: 60 }))

/** Topics are streams (removed with the scope); publishers publish with msgIds and retry. */
const jetStreamTopics = (options: JetStreamAdapterOptions) =>
  Effect.gen(function*() {
    const jsm = yield* JetStreamManager.JetStreamManager
    const context = Context.pick(NatsServer.NatsServer)(yield* Effect.context<NatsServer.NatsServer>())
    const createTopic: AdapterShape["createTopic"] = (topic) =>
      Effect.acquireRelease(
        jsm.createOrUpdateStream({ name: topic, subjects: [`${topic}.>`], replicas: options.replicas }),
        () => Effect.ignore(jsm.deleteStream(topic))
      )
    const publisher: AdapterShape["publisher"] = Effect.gen(function*() {
      const client = yield* Effect.provideContext(connection, context)
      const js = yield* JetStream.make().pipe(Effect.provideService(NatsClient.NatsClient, client))
      const one = (topic: string, m: OutgoingMessage) =>
        js.publish(subjectOf(topic), m.payload, { msgId: m.id, timeout: publishTimeout, retry: publishRetry })
      const pub: Publisher = {
        publish: (topic, messages) =>
          messages.length === 1 && messages[0] !== undefined
            ? Effect.asVoid(one(topic, messages[0]))
            : js.publishAll(messages.map((m) => ({ subject: subjectOf(topic), payload: m.payload, msgId: m.id })), {
              timeout: publishTimeout
            }).pipe(
              Stream.runDrain,
              // the msgIds make a retried batch store nothing twice
              Effect.retry({ schedule: publishRetry, while: (error) => error.isRetryable })
            )
      }
      return pub
    })
    return { createTopic, publisher }
  })

/** A JetStream delivery, for failure reports. */
const traceOf = (m: JsEnvelope.JsEnvelope<unknown>) =>
  `stream seq ${m.streamSequence}, consumer seq ${m.consumerSequence}, delivery ${m.deliveryCount}, at ${
    new Date().toISOString().slice(11, 23)
  } by ${m.consumer}`

/** The durable pull consumer `group` of the topic's stream (created or updated). */
const durable = (topic: string, group: string, options: JetStreamAdapterOptions) =>
  Consumer.fromConfig({
    stream: topic,
    config: {
      durable: group,
      ackPolicy: "explicit",
      ackWait: Duration.fromInputUnsafe(options.ackWait),
      maxDeliver: -1
    }
  })

/**
 * JetStream: a stream per topic, a durable pull consumer per group, read with `consume`; ack is `ack`,
 * nack is `nak()` (redelivered at once); not acked within the ack wait: redelivered.
 */
export const jetStream = (
  options: JetStreamAdapterOptions
): Layer.Layer<
  Adapter,
  never,
  NatsClient.NatsClient | NatsServer.NatsServer | JetStreamManager.JetStreamManager
> =>
  Layer.effect(
    Adapter,
    Effect.gen(function*() {
      const topics = yield* jetStreamTopics(options)
      // the services only: the Layer's Scope must not become the subscribers' scope
      const context = Context.pick(NatsClient.NatsClient, JetStreamManager.JetStreamManager)(
        yield* Effect.context<NatsClient.NatsClient | JetStreamManager.JetStreamManager>()
      )
      return Adapter.of({
        ...topics,
        restart: yield* restartConnectedNode,
        subscribe: (topic, group) =>
          Effect.map(
            durable(topic, group, options).pipe(Effect.provideContext(context)),
            (consumer) =>
              consumer.consume().pipe(Stream.map((m): Delivery => ({
                id: m.headers?.get("Nats-Msg-Id") ?? "",
                payload: m.value,
                trace: traceOf(m),
                ack: m.ack,
                nack: m.nak()
              })))
          )
      })
    })
  )

// -----------------------------------------------------------------------------
// Processor
// -----------------------------------------------------------------------------

/** Options of the Processor adapter. */
export interface ProcessorAdapterOptions extends JetStreamAdapterOptions {
  /** Handlers at once. */
  readonly concurrency: number
  /** A handler that neither acks nor nacks in this time fails (TimedOut): retried. */
  readonly handlerTimeout: Duration.Input
}

/** Settles a delivery of the Processor adapter; fails when it was settled already (timed out, closed). */
const decide = (decision: Deferred.Deferred<boolean>, ok: boolean): Effect.Effect<void, Error> =>
  Effect.flatMap(
    Deferred.succeed(decision, ok),
    (first) =>
      first
        ? Effect.void
        : Effect.fail(new Error("the delivery is no longer held (timed out, or its subscriber closed)"))
  )

/**
 * The Processor over a durable pull consumer per group. Its handler hands each message to the
 * subscriber's Stream and settles as the subscriber says: ack → the handler succeeds (acked), nack → it
 * fails (retried: nak with a 100 ms delay, forever). A delivery neither acked nor nacked times out after
 * `handlerTimeout` (retried too). Closing the scope hands out nothing more, nacks the deliveries still
 * waiting for a decision, then shuts the processor down (grace period 4 s).
 */
export const processor = (
  options: ProcessorAdapterOptions
): Layer.Layer<
  Adapter,
  never,
  NatsClient.NatsClient | NatsServer.NatsServer | JetStreamManager.JetStreamManager | JetStream.JetStream
> =>
  Layer.effect(
    Adapter,
    Effect.gen(function*() {
      const topics = yield* jetStreamTopics(options)
      const context = Context.pick(NatsClient.NatsClient, JetStreamManager.JetStreamManager, JetStream.JetStream)(
        yield* Effect.context<NatsClient.NatsClient | JetStreamManager.JetStreamManager | JetStream.JetStream>()
      )
      const subscribe: AdapterShape["subscribe"] = (topic, group) =>
        Effect.gen(function*() {
          const deliveries = yield* Queue.unbounded<Delivery, unknown>()
          yield* Effect.addFinalizer(() => Queue.end(deliveries))
          const consumer = yield* durable(topic, group, options)
          const waiting = new Set<Deferred.Deferred<boolean>>()
          let closing = false
          const fiber = yield* Processor.make({
            consumer,
            codec: Codec.bytes,
            concurrency: options.concurrency,
            retry: Schedule.spaced("100 millis"),
            handlerTimeout: options.handlerTimeout,
            gracePeriod: "4 seconds",
            handler: (payload, envelope) =>
              Effect.gen(function*() {
                if (closing) return yield* Effect.fail("closing")
                const decision = Deferred.makeUnsafe<boolean>()
                waiting.add(decision)
                yield* Queue.offer(deliveries, {
                  id: envelope.headers?.get("Nats-Msg-Id") ?? "",
                  payload,
                  trace: traceOf(envelope),
                  ack: decide(decision, true),
                  nack: decide(decision, false)
                })
                const ok = yield* Deferred.await(decision).pipe(
                  // timed out or interrupted: a later decision comes too late
                  Effect.ensuring(Effect.sync(() => {
                    waiting.delete(decision)
                    Deferred.doneUnsafe(decision, Exit.succeed(false))
                  }))
                )
                if (!ok) return yield* Effect.fail("nacked")
              })
          })
          // runs before the processor's own shutdown: what was not handed out is not, and what waits
          // for a decision is nacked (nobody will decide)
          yield* Effect.addFinalizer(() =>
            Effect.gen(function*() {
              closing = true
              yield* Effect.ignore(Queue.clear(deliveries))
              yield* Queue.end(deliveries)
              for (const decision of waiting) Deferred.doneUnsafe(decision, Exit.succeed(false))
            })
          )
          yield* Fiber.await(fiber).pipe(
            Effect.flatMap((exit) =>
              Exit.isFailure(exit) && !Cause.hasInterruptsOnly(exit.cause)
                ? Queue.failCause(deliveries, exit.cause)
                : Queue.end(deliveries)
            ),
            Effect.forkScoped
          )
          return Stream.fromQueue(deliveries)
        }).pipe(Effect.provideContext(context))
      return Adapter.of({ ...topics, restart: yield* restartConnectedNode, subscribe })
    })
  )
