/**
 * A conformance suite for publish/subscribe adapters over effect-nats, modelled on the pub/sub test suite
 * of Watermill (Go): one set of cases, run against every adapter, each case applying or skipped by the
 * adapter's {@link Features}.
 *
 * An adapter ({@link AdapterShape}) is the smallest common surface of a messaging transport: create a
 * topic, publish messages to it, subscribe to it as a Stream of deliveries that are acked or nacked, and
 * (optionally) restart the broker. Wrap effect-nats your way (core subscriptions, JetStream consumers, a
 * Processor, your own service on top), provide it as a Layer of {@link Adapter}, state what it promises,
 * and run {@link suite}:
 *
 * ```ts
 * suite("orders bus on a single node", OrdersBusAdapter.pipe(Layer.provide(LocalNats.layer())), {
 *   topology: "single",
 *   persistent: true,
 *   ...
 * })
 * ```
 *
 * Every case creates its own topics (names unique within the suite), awaits conditions rather than
 * sleeping, and fails with what it saw (counts, missing and duplicated ids). A case that does not apply
 * to the adapter is registered as skipped, its name saying which feature it needs.
 *
 * @since 0.1.0
 */
import { assert, describe, layer } from "@effect/vitest"
import type { Layer } from "effect"
import { Cause, Context, Deferred, Duration, Effect, Exit, Fiber, Scope, Stream } from "effect"

// -----------------------------------------------------------------------------
// The adapter
// -----------------------------------------------------------------------------

/**
 * A message to publish: `id` identifies it end to end (the adapter carries it, in a header say, and
 * hands it back on the {@link Delivery}); `payload` must arrive byte for byte.
 *
 * @category models
 * @since 0.1.0
 */
export interface OutgoingMessage {
  readonly id: string
  readonly payload: Uint8Array
}

/**
 * A received message with its settlement. `ack`: processed, do not deliver again. `nack`: not processed,
 * deliver it again as soon as the transport allows (a no-op where there is no redelivery). Neither: the
 * transport may deliver it again after its ack deadline ({@link Features.ackDeadline}).
 *
 * @category models
 * @since 0.1.0
 */
export interface Delivery {
  readonly id: string
  readonly payload: Uint8Array
  /** What the transport says of this delivery (its sequence, its delivery count...): reported on failures. */
  readonly trace?: string | undefined
  readonly ack: Effect.Effect<void, unknown>
  readonly nack: Effect.Effect<void, unknown>
}

/**
 * A publisher, open for the life of the scope it was made in. Closing that scope closes the publisher
 * (its connection, typically): publishes in flight then fail or succeed, but never hang or crash.
 *
 * @category models
 * @since 0.1.0
 */
export interface Publisher {
  /**
   * Publishes the messages to the topic, in order. Succeeds once the transport has accepted every one
   * (core NATS: flushed to the server; JetStream: acked by the stream). A persistent adapter should
   * retry what a broker restart interrupts (the reconnect case counts on it).
   */
  readonly publish: (topic: string, messages: ReadonlyArray<OutgoingMessage>) => Effect.Effect<void, unknown>
}

/**
 * What the suite drives.
 *
 * @category models
 * @since 0.1.0
 */
export interface AdapterShape {
  /**
   * Prepares a topic (a JetStream stream, say) named `topic`: letters, digits and dashes, unique within
   * the suite. What it creates may be removed when the scope closes.
   */
  readonly createTopic: (topic: string) => Effect.Effect<void, unknown, Scope.Scope>
  /** A new publisher, closed with the scope. */
  readonly publisher: Effect.Effect<Publisher, unknown, Scope.Scope>
  /**
   * Subscribes to the topic as a member of `group`. Once the Effect succeeds the subscription is live:
   * nothing published after it is missed. Members of one group share the topic's messages (a queue
   * group, a shared durable consumer); different groups each receive every message (an adapter without
   * groups may ignore `group`: {@link Features.consumerGroups} `false`). Closing the scope unsubscribes
   * and ends the Stream.
   */
  readonly subscribe: (
    topic: string,
    group: string
  ) => Effect.Effect<Stream.Stream<Delivery, unknown>, unknown, Scope.Scope>
  /** Restarts the broker (one node of a cluster); needed by {@link Features.restartable}. */
  readonly restart?: Effect.Effect<void, unknown> | undefined
}

/**
 * The adapter under test, provided by the Layer given to {@link suite}.
 *
 * @category services
 * @since 0.1.0
 */
export class Adapter extends Context.Service<Adapter, AdapterShape>()("effect-nats/Conformance/Adapter") {}

/**
 * What an adapter promises; each flag decides which cases apply.
 *
 * @category models
 * @since 0.1.0
 */
export interface Features {
  /** One node or a cluster (named in the suite; cluster cases get longer deadlines). */
  readonly topology: "single" | "cluster"
  /**
   * Messages published while a group has no live member are kept for it: a member that subscribes later
   * (the group's first, or after the others closed) receives them.
   */
  readonly persistent: boolean
  /**
   * A subscriber in a new group receives the messages published before the group existed, also those
   * other groups consumed and acked (a log, as Kafka's or a JetStream stream's).
   */
  readonly newSubscriberReceivesOldMessages: boolean
  /** A single subscriber receives the messages of one publisher in the order published (no failures). */
  readonly ordered: boolean
  /** Members of one group share the messages; every group receives every message. */
  readonly consumerGroups: boolean
  /**
   * While every delivery is acked in time and nothing fails, no message is delivered twice (to any
   * member of a group): the suite then asserts no duplicates, otherwise it only asserts no loss. Cases
   * that close subscribers with messages outstanding (continue after close, persistent errors, reconnect)
   * never assert it, as Watermill's suite does not.
   */
  readonly exactlyOnce: boolean
  /** A nacked message is delivered again. */
  readonly redelivery: boolean
  /** A delivery neither acked nor nacked is delivered again after this long; `undefined`: never. */
  readonly ackDeadline?: Duration.Input | undefined
  /**
   * Survives a broker restart ({@link AdapterShape.restart}) with no message lost: publishes the
   * restart interrupts are retried and the subscriber resumes.
   */
  readonly restartable: boolean
}

/**
 * The cases, by name (keys of {@link SuiteOptions.knownDefects}).
 *
 * @category models
 * @since 0.1.0
 */
export type CaseName =
  | "publishSubscribe"
  | "concurrentSubscribers"
  | "manyTopics"
  | "redeliveryOnNack"
  | "redeliveryOnAckDeadline"
  | "continueAfterSubscriberClose"
  | "concurrentClose"
  | "continueAfterErrors"
  | "order"
  | "publisherClose"
  | "newSubscriberReceivesOldMessages"
  | "consumerGroups"
  | "reconnect"

/**
 * @category models
 * @since 0.1.0
 */
export interface SuiteOptions {
  /**
   * Cases that fail because of a known defect of the transport, with its description: registered with
   * `it.fails` (the case must fail; it starts failing the suite once the defect is fixed, as a reminder).
   */
  readonly knownDefects?: Partial<Record<CaseName, string>> | undefined
}

// -----------------------------------------------------------------------------
// Received messages
// -----------------------------------------------------------------------------

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** `n` messages with ids `prefix-0...`, each with its own payload. */
const makeMessages = (prefix: string, n: number): Array<OutgoingMessage> =>
  Array.from({ length: n }, (_, i) => ({
    id: `${prefix}-${i}`,
    payload: encoder.encode(`${prefix}/${i}/${Math.random().toString(36).slice(2)}`)
  }))

const idsOf = (messages: ReadonlyArray<OutgoingMessage>): Array<string> => messages.map((m) => m.id)

/** What the subscribers of a case received, and conditions on it that can be awaited. */
class Received {
  readonly counts = new Map<string, number>()
  readonly order: Array<string> = []
  readonly payloads = new Map<string, Uint8Array>()
  /** The transport's traces of each id's deliveries, when it gives them. */
  readonly traces = new Map<string, Array<string>>()
  failure: Cause.Cause<unknown> | undefined
  private waiters: Array<{ readonly check: () => boolean; readonly done: Deferred.Deferred<void> }> = []

  readonly label: string

  constructor(label: string) {
    this.label = label
  }

  record(delivery: { readonly id: string; readonly payload: Uint8Array; readonly trace?: string | undefined }): void {
    if (delivery.trace !== undefined) {
      const traces = this.traces.get(delivery.id) ?? []
      traces.push(delivery.trace)
      this.traces.set(delivery.id, traces)
    }
    const seen = this.counts.get(delivery.id) ?? 0
    this.counts.set(delivery.id, seen + 1)
    if (seen === 0) {
      this.order.push(delivery.id)
      this.payloads.set(delivery.id, delivery.payload)
    }
    this.wake()
  }

  fail(cause: Cause.Cause<unknown>): void {
    this.failure ??= cause
    this.wake()
  }

  count(id: string): number {
    return this.counts.get(id) ?? 0
  }

  get distinct(): number {
    return this.counts.size
  }

  get duplicates(): Array<string> {
    return [...this.counts].filter(([, n]) => n > 1).map(([id]) => id)
  }

  hasAll(ids: Iterable<string>): boolean {
    for (const id of ids) if (!this.counts.has(id)) return false
    return true
  }

  missing(ids: Iterable<string>): Array<string> {
    return [...ids].filter((id) => !this.counts.has(id))
  }

  /** Succeeds once `check` holds; fails at once if a subscriber failed, and after `timeout`. */
  until(
    check: () => boolean,
    timeout: Duration.Input,
    what: () => string
  ): Effect.Effect<void, Error> {
    return Effect.suspend(() => {
      if (this.failure !== undefined) return Effect.fail(this.subscriberFailed())
      if (check()) return Effect.void
      const done = Deferred.makeUnsafe<void>()
      this.waiters.push({ check, done })
      return Deferred.await(done).pipe(
        Effect.andThen(() =>
          this.failure === undefined || check() ? Effect.void : Effect.fail(this.subscriberFailed())
        ),
        Effect.timeoutOrElse({
          duration: timeout,
          orElse: () =>
            Effect.fail(
              new Error(
                `${this.label}: timed out after ${Duration.format(Duration.fromInputUnsafe(timeout))}: ${what()}`
              )
            )
        })
      )
    })
  }

  /** Until every id was received at least once. */
  untilAll(ids: ReadonlyArray<string>, timeout: Duration.Input): Effect.Effect<void, Error> {
    return this.until(() => this.hasAll(ids), timeout, () => {
      const missing = this.missing(ids)
      return `received ${
        ids.length - missing.length
      } of ${ids.length} (${this.order.length} distinct in all); missing e.g. ${missing.slice(0, 5).join(", ")}`
    })
  }

  private subscriberFailed(): Error {
    return new Error(
      `${this.label}: a subscriber failed: ${this.failure === undefined ? "?" : Cause.pretty(this.failure)}`
    )
  }

  private wake(): void {
    if (this.waiters.length === 0) return
    // waiters resumed below may register new ones: they go to the new list
    const waiters = this.waiters
    this.waiters = []
    const ready: Array<Deferred.Deferred<void>> = []
    for (const w of waiters) {
      if (this.failure === undefined && !w.check()) this.waiters.push(w)
      else ready.push(w.done)
    }
    for (const done of ready) Deferred.doneUnsafe(done, Effect.void)
  }
}

const assertNoDuplicates = (received: Received, features: Features) => {
  if (!features.exactlyOnce) return
  const duplicates = received.duplicates.map((id) => {
    const traces = received.traces.get(id)
    return `${id} ×${received.count(id)}${traces === undefined ? "" : ` (${traces.join(", ")})`}`
  })
  assert.strictEqual(
    duplicates.length,
    0,
    `${received.label}: ${duplicates.length} messages delivered more than once: ${duplicates.slice(0, 10).join("; ")}`
  )
}

// -----------------------------------------------------------------------------
// Subscribers and publishers
// -----------------------------------------------------------------------------

/** What a subscriber does with a delivery; the default acks it. */
type Handle = (delivery: Delivery) => Effect.Effect<void, unknown>

const ackAndRecord = (received: Received): Handle => (delivery) =>
  // received once acked (a failed ack: it will come back), and both or neither: a subscriber closed
  // in between must not leave a recorded message un-acked (it would come back as a duplicate)
  Effect.uninterruptible(
    Effect.flatMap(
      Effect.exit(delivery.ack),
      (acked) => Exit.isSuccess(acked) ? Effect.sync(() => received.record(delivery)) : Effect.void
    )
  )

interface Subscriber {
  /** Unsubscribes (awaited). */
  readonly close: Effect.Effect<void>
  /** The fiber reading the Stream: it ends when the Stream ends. */
  readonly reader: Fiber.Fiber<void, unknown>
}

/**
 * A subscriber in its own scope (a child of the case's), its Stream read by a fiber of the case (not of
 * that scope: the Stream must end by itself when the scope closes). A failure of the Stream is recorded
 * in `received`, which fails the awaited conditions.
 */
const subscriber = (
  topic: string,
  group: string,
  received: Received,
  handle: Handle = ackAndRecord(received)
): Effect.Effect<Subscriber, unknown, Adapter | Scope.Scope> =>
  Effect.gen(function*() {
    const adapter = yield* Adapter
    const scope = yield* Scope.fork(yield* Effect.scope)
    const stream = yield* adapter.subscribe(topic, group).pipe(Scope.provide(scope))
    const reader = yield* stream.pipe(
      Stream.runForEach(handle),
      Effect.onExit((exit) =>
        Exit.isFailure(exit) && !Cause.hasInterruptsOnly(exit.cause)
          ? Effect.sync(() => received.fail(exit.cause))
          : Effect.void
      ),
      // reading when the subscriber is handed out
      Effect.forkScoped({ startImmediately: true })
    )
    return { close: Scope.close(scope, Exit.void), reader }
  })

/** A publisher in its own scope (a child of the case's), with the scope to close it early. */
const publisher = Effect.gen(function*() {
  const adapter = yield* Adapter
  const scope = yield* Scope.fork(yield* Effect.scope)
  const pub = yield* adapter.publisher.pipe(Scope.provide(scope))
  return { ...pub, close: Scope.close(scope, Exit.void) }
})

/** Publishes in `concurrency` batches at once (each publisher its own), in all the messages given. */
const publishConcurrently = (topic: string, messages: ReadonlyArray<OutgoingMessage>, concurrency: number) =>
  Effect.gen(function*() {
    const size = Math.ceil(messages.length / concurrency)
    const batches = Array.from({ length: concurrency }, (_, i) => messages.slice(i * size, (i + 1) * size))
    yield* Effect.forEach(batches, (batch) =>
      Effect.gen(function*() {
        const pub = yield* publisher
        yield* pub.publish(topic, batch)
        yield* pub.close
      }), { concurrency: "unbounded", discard: true })
  })

const publishAll = (topic: string, messages: ReadonlyArray<OutgoingMessage>) =>
  Effect.gen(function*() {
    const pub = yield* publisher
    yield* pub.publish(topic, messages)
    yield* pub.close
  })

// -----------------------------------------------------------------------------
// The cases
// -----------------------------------------------------------------------------

interface Case {
  readonly name: CaseName
  readonly title: string
  /** Why the case does not apply to these features, if it does not. */
  readonly skip: (features: Features) => string | undefined
  /** Its deadline (ms). */
  readonly timeout: (features: Features) => number
  readonly run: (ctx: CaseContext) => Effect.Effect<void, unknown, Adapter | Scope.Scope>
}

interface CaseContext {
  readonly features: Features
  /** A new topic name, unique within the suite (not created). */
  readonly topicName: (label: string) => string
  /** A deadline for one awaited condition, longer on a cluster. */
  readonly wait: (millis: number) => Duration.Duration
}

const createTopic = (topic: string) => Adapter.use((adapter) => adapter.createTopic(topic))

const needs = (flag: boolean, name: string) => (flag ? undefined : `needs ${name}`)

const seconds = (s: number) => () => s * 1000

const cases: ReadonlyArray<Case> = [
  {
    name: "publishSubscribe",
    title: "publish/subscribe: every message delivered, payloads equal; the Stream ends when the scope closes",
    skip: () => undefined,
    timeout: seconds(30),
    run: ({ features, topicName, wait }) =>
      Effect.gen(function*() {
        const topic = topicName("pubsub")
        yield* createTopic(topic)
        const received = new Received("subscriber")
        const sub = yield* subscriber(topic, "g", received)
        const messages = makeMessages(topic, 100)
        yield* publishAll(topic, messages)
        yield* received.untilAll(idsOf(messages), wait(10_000))
        for (const m of messages) {
          assert.strictEqual(
            decoder.decode(received.payloads.get(m.id)),
            decoder.decode(m.payload),
            `payload of ${m.id}`
          )
        }
        assert.strictEqual(received.distinct, messages.length, "nothing but what was published")
        assertNoDuplicates(received, features)
        yield* sub.close
        const ended = yield* Fiber.await(sub.reader).pipe(Effect.timeoutOption(wait(5_000)))
        assert.isTrue(ended._tag === "Some", "the Stream ends after its scope closed")
        if (ended._tag === "Some") assert.isTrue(Exit.isSuccess(ended.value), `ends cleanly: ${String(ended.value)}`)
      })
  },
  {
    name: "concurrentSubscribers",
    title: "concurrent subscribers: 10 members of a group, 1,000 messages from 10 publishers, none lost",
    skip: () => undefined,
    timeout: seconds(30),
    run: ({ features, topicName, wait }) =>
      Effect.gen(function*() {
        const topic = topicName("concurrent")
        yield* createTopic(topic)
        const received = new Received("group")
        yield* Effect.forEach(Array.from({ length: 10 }), () => subscriber(topic, "g", received), {
          concurrency: "unbounded"
        })
        const messages = makeMessages(topic, 1_000)
        yield* publishConcurrently(topic, messages, 10)
        yield* received.untilAll(idsOf(messages), wait(15_000))
        if (features.consumerGroups) assertNoDuplicates(received, features)
      })
  },
  {
    name: "manyTopics",
    title: "many topics at once: 10 topics, 50 messages each, each subscriber gets its topic's only",
    skip: () => undefined,
    timeout: seconds(30),
    run: ({ features, topicName, wait }) =>
      Effect.forEach(Array.from({ length: 10 }, (_, i) => i), (i) =>
        Effect.gen(function*() {
          const topic = topicName(`topics${i}`)
          yield* createTopic(topic)
          const received = new Received(`topic ${topic}`)
          yield* subscriber(topic, "g", received)
          const messages = makeMessages(topic, 50)
          yield* publishAll(topic, messages)
          yield* received.untilAll(idsOf(messages), wait(15_000))
          const foreign = [...received.counts.keys()].filter((id) => !id.startsWith(`${topic}-`))
          assert.deepStrictEqual(foreign, [], `${topic} received other topics' messages`)
          assertNoDuplicates(received, features)
        }), { concurrency: "unbounded", discard: true })
  },
  {
    name: "redeliveryOnNack",
    title: "redelivery on failure: a nacked message is delivered again",
    skip: (f) => needs(f.redelivery, "redelivery"),
    timeout: seconds(30),
    run: ({ topicName, wait }) =>
      Effect.gen(function*() {
        const topic = topicName("nack")
        yield* createTopic(topic)
        const delivered = new Received("deliveries")
        const acked = new Received("acked")
        const messages = makeMessages(topic, 20)
        const nacked = new Set(messages.filter((_, i) => i % 4 === 1).map((m) => m.id))
        yield* subscriber(topic, "g", delivered, (d) =>
          Effect.suspend(() => {
            delivered.record(d)
            return nacked.has(d.id) && delivered.count(d.id) === 1
              ? d.nack
              : Effect.andThen(d.ack, Effect.sync(() => acked.record(d)))
          }))
        yield* publishAll(topic, messages)
        yield* acked.untilAll(idsOf(messages), wait(10_000))
        for (const id of nacked) assert.isAtLeast(delivered.count(id), 2, `${id} was nacked: delivered again`)
      })
  },
  {
    name: "redeliveryOnAckDeadline",
    title: "redelivery when not acked: delivered again after the ack deadline, not before",
    skip: (f) => needs(f.ackDeadline !== undefined, "ackDeadline"),
    timeout: seconds(30),
    run: ({ features, topicName, wait }) =>
      Effect.gen(function*() {
        const deadline = Duration.toMillis(Duration.fromInputUnsafe(features.ackDeadline ?? 0))
        const topic = topicName("noack")
        yield* createTopic(topic)
        const delivered = new Received("deliveries")
        const messages = makeMessages(topic, 3)
        const dropped = messages[1]?.id ?? ""
        const at: Array<number> = []
        yield* subscriber(topic, "g", delivered, (d) =>
          Effect.suspend(() => {
            if (d.id === dropped) at.push(Date.now())
            delivered.record(d)
            if (d.id !== dropped) return d.ack
            // neither acked nor nacked the first time
            return delivered.count(d.id) === 1 ? Effect.void : d.ack
          }))
        yield* publishAll(topic, messages)
        yield* delivered.until(() => delivered.count(dropped) >= 2, wait(deadline + 10_000), () =>
          `${dropped} delivered ${delivered.count(dropped)} times`)
        const after = (at[1] ?? 0) - (at[0] ?? 0)
        assert.isAtLeast(after, deadline * 0.8, `redelivered after ${after} ms, the deadline is ${deadline} ms`)
        if (features.exactlyOnce) {
          for (const m of messages) {
            if (m.id !== dropped) {
              assert.strictEqual(delivered.count(m.id), 1, m.id)
            }
          }
        }
      })
  },
  {
    name: "continueAfterSubscriberClose",
    title: "continue after a subscriber closes: the next member gets the rest, nothing lost (duplicates allowed)",
    skip: (f) => needs(f.persistent, "persistent"),
    timeout: seconds(45),
    run: ({ topicName, wait }) =>
      Effect.gen(function*() {
        const topic = topicName("reopen")
        yield* createTopic(topic)
        const messages = makeMessages(topic, 200)
        const ids = idsOf(messages)
        yield* publishConcurrently(topic, messages, 10)
        const received = new Received("subscribers in turn")
        for (let round = 0; round < 12 && !received.hasAll(ids); round++) {
          const target = Math.min(ids.length, received.distinct + 50)
          const sub = yield* subscriber(topic, "g", received)
          yield* received.until(() => received.distinct >= target, wait(10_000), () =>
            `round ${round}: ${received.distinct} of ${target} distinct`)
          yield* sub.close
        }
        assert.deepStrictEqual(received.missing(ids).slice(0, 10), [], `received ${received.distinct} of ${ids.length}`)
        // duplicates allowed, as in Watermill: a closed subscriber's outstanding pulls can make the
        // server deliver a message again (observed on nats-server 2.9: the last message, twice)
      })
  },
  {
    name: "concurrentClose",
    title:
      "concurrent close: 10 subscribers closed at once: promptly, no crash, their Streams end; a new one gets every message",
    skip: () => undefined,
    timeout: seconds(30),
    run: ({ features, topicName, wait }) =>
      Effect.gen(function*() {
        const topic = topicName("close")
        yield* createTopic(topic)
        const idle = new Received("closed subscribers")
        const subs = yield* Effect.forEach(Array.from({ length: 10 }), () => subscriber(topic, "g", idle), {
          concurrency: "unbounded"
        })
        // nothing is in flight: closing is prompt (on a cluster too)
        yield* Effect.forEach(subs, (s) => s.close, { concurrency: "unbounded", discard: true }).pipe(
          Effect.timeoutOrElse({
            duration: "3 seconds",
            orElse: () => Effect.fail(new Error("closing 10 idle subscribers at once takes over 3 s"))
          })
        )
        for (const s of subs) {
          const exit = yield* Fiber.await(s.reader).pipe(Effect.timeoutOption(wait(5_000)))
          assert.isTrue(exit._tag === "Some", "a closed subscriber's Stream ends")
          if (exit._tag === "Some") assert.isFalse(Exit.hasDies(exit.value), `no defect: ${String(exit.value)}`)
        }
        assert.isUndefined(idle.failure)
        const messages = makeMessages(topic, 50)
        const received = new Received("new subscriber")
        if (features.persistent) {
          yield* publishAll(topic, messages)
          yield* subscriber(topic, "g", received)
        } else {
          yield* subscriber(topic, "g", received)
          yield* publishAll(topic, messages)
        }
        yield* received.untilAll(idsOf(messages), wait(10_000))
        assertNoDuplicates(received, features)
      })
  },
  {
    name: "continueAfterErrors",
    title: "continue after handler errors: failed (nacked) deliveries do not stop the subscription",
    skip: () => undefined,
    timeout: seconds(45),
    run: ({ features, topicName, wait }) =>
      Effect.gen(function*() {
        const topic = topicName("errors")
        yield* createTopic(topic)
        const messages = makeMessages(topic, 50)
        const nacked = new Set<string>()
        const acked = new Received("acked")
        let failures = 0
        const fail = (round: Received) => (d: Delivery) =>
          Effect.suspend(() => {
            failures++
            nacked.add(d.id)
            round.record(d)
            return d.nack
          })
        if (features.persistent) {
          // 3 subscribers in turn fail every delivery (at least 5 each), then close; a 4th acks
          yield* publishAll(topic, messages)
          for (let round = 0; round < 3; round++) {
            const failed = new Received(`failing subscriber ${round}`)
            const sub = yield* subscriber(topic, "g", failed, fail(failed))
            yield* failed.until(() => failed.distinct >= 5, wait(10_000), () => `${failed.distinct} failures`)
            yield* sub.close
          }
          yield* subscriber(topic, "g", acked)
        } else {
          // one subscriber fails its first 15 deliveries, then acks
          const failed = new Received("failed")
          const handleFailing = fail(failed)
          const handleOk = ackAndRecord(acked)
          yield* subscriber(topic, "g", acked, (d) => failures < 15 ? handleFailing(d) : handleOk(d))
          yield* publishAll(topic, messages)
          yield* failed.until(() => failures >= 15, wait(10_000), () => `${failures} failures`)
        }
        const expected = features.redelivery ? idsOf(messages) : idsOf(messages).filter((id) => !nacked.has(id))
        assert.isAtLeast(failures, 15)
        assert.isAtLeast(expected.length, features.redelivery ? 50 : 35)
        yield* acked.untilAll(expected, wait(20_000))
        if (!features.persistent) assertNoDuplicates(acked, features)
        // persistent: subscribers were closed under load, duplicates allowed (see continueAfterSubscriberClose)
      })
  },
  {
    name: "order",
    title: "order with a single subscriber: 1,000 messages received in the order published",
    skip: (f) => needs(f.ordered, "ordered"),
    timeout: seconds(30),
    run: ({ features, topicName, wait }) =>
      Effect.gen(function*() {
        const topic = topicName("order")
        yield* createTopic(topic)
        const received = new Received("subscriber")
        yield* subscriber(topic, "g", received)
        const messages = makeMessages(topic, 1_000)
        yield* publishAll(topic, messages)
        yield* received.untilAll(idsOf(messages), wait(15_000))
        const firstOutOfOrder = received.order.findIndex((id, i) => id !== messages[i]?.id)
        assert.strictEqual(
          firstOutOfOrder,
          -1,
          `message ${firstOutOfOrder} out of order: ${received.order[firstOutOfOrder]}`
        )
        assertNoDuplicates(received, features)
      })
  },
  {
    name: "publisherClose",
    title: "publisher closed while publishing: no hang, no defect, no unhandled rejection; what was accepted arrives",
    skip: () => undefined,
    timeout: seconds(30),
    run: ({ topicName, wait }) =>
      Effect.gen(function*() {
        const topic = topicName("pubclose")
        yield* createTopic(topic)
        const received = new Received("subscriber")
        yield* subscriber(topic, "g", received)
        const messages = makeMessages(topic, 20_000)
        const pub = yield* publisher
        const accepted: Array<string> = []
        let next = 0
        const enough = yield* Deferred.make<void>()
        // 10 fibers publishing one message at a time until the publisher fails
        const publishing = yield* Effect.forEach(Array.from({ length: 10 }), () =>
          Effect.gen(function*() {
            while (next < messages.length) {
              const message = messages[next++]
              if (message === undefined) return
              yield* pub.publish(topic, [message])
              accepted.push(message.id)
              if (accepted.length >= 200) yield* Deferred.succeed(enough, undefined)
            }
          }).pipe(Effect.exit, Effect.forkScoped))
        yield* Deferred.await(enough).pipe(Effect.timeoutOrElse({
          duration: wait(10_000),
          orElse: () =>
            Effect.gen(function*() {
              const exits = yield* Effect.forEach(publishing, (f) => Fiber.await(f).pipe(Effect.timeoutOption(0)))
              return yield* Effect.fail(
                new Error(`${accepted.length} accepted in 10 s; ${exits.map(String).join("; ")}`)
              )
            })
        }))
        // the case's premise: publishes are under way when the publisher closes
        assert.isBelow(next, messages.length, "publishing when the publisher closes")
        yield* pub.close.pipe(
          Effect.timeoutOrElse({ duration: wait(10_000), orElse: () => Effect.fail(new Error("closing hangs")) })
        )
        for (const fiber of publishing) {
          const exit = yield* Fiber.join(fiber).pipe(
            Effect.timeoutOrElse({
              duration: wait(10_000),
              orElse: () => Effect.fail(new Error("a publish hangs after its publisher closed"))
            })
          )
          // a publish after the close fails (typed); it must not die
          assert.isFalse(Exit.hasDies(exit), `no defect: ${String(exit)}`)
        }
        yield* received.untilAll(accepted, wait(10_000))
      })
  },
  {
    name: "newSubscriberReceivesOldMessages",
    title: "a new subscriber (in a new group) receives the messages published before it",
    skip: (f) => needs(f.newSubscriberReceivesOldMessages, "newSubscriberReceivesOldMessages"),
    timeout: seconds(30),
    run: ({ features, topicName, wait }) =>
      Effect.gen(function*() {
        const topic = topicName("replay")
        yield* createTopic(topic)
        const published: Array<string> = []
        const subscribers: Array<Received> = []
        for (let round = 0; round < 3; round++) {
          const [message] = makeMessages(`${topic}-r${round}`, 1)
          if (message === undefined) return
          yield* publishAll(topic, [message])
          published.push(message.id)
          const received = new Received(`subscriber ${round} (group g${round})`)
          yield* subscriber(topic, `g${round}`, received)
          subscribers.push(received)
          for (const s of subscribers) yield* s.untilAll(published, wait(10_000))
        }
        for (const s of subscribers) assertNoDuplicates(s, features)
      })
  },
  {
    name: "consumerGroups",
    title: "consumer groups: 2 groups of 3 members, each group gets every message, once",
    skip: (f) => needs(f.consumerGroups, "consumerGroups"),
    timeout: seconds(30),
    run: ({ features, topicName, wait }) =>
      Effect.gen(function*() {
        const topic = topicName("groups")
        yield* createTopic(topic)
        const groups = [new Received("group a"), new Received("group b")]
        for (const [i, group] of groups.entries()) {
          yield* Effect.forEach(Array.from({ length: 3 }), () => subscriber(topic, `cg${i}`, group), {
            concurrency: "unbounded"
          })
        }
        const messages = makeMessages(topic, 50)
        yield* publishAll(topic, messages)
        for (const group of groups) {
          yield* group.untilAll(idsOf(messages), wait(10_000))
          assert.strictEqual(group.distinct, messages.length)
          assertNoDuplicates(group, features)
        }
      })
  },
  {
    name: "reconnect",
    title: "reconnect: 10,000 messages from 100 concurrent publishers while the server restarts twice, none lost",
    skip: (f) => needs(f.restartable, "restartable"),
    timeout: (f) => (f.topology === "cluster" ? 120_000 : 90_000),
    run: ({ topicName, wait }) =>
      Effect.gen(function*() {
        const adapter = yield* Adapter
        const restart = adapter.restart
        if (restart === undefined) return yield* Effect.fail(new Error("a restartable adapter needs restart"))
        const topic = topicName("reconnect")
        yield* createTopic(topic)
        const received = new Received("subscriber")
        yield* subscriber(topic, "g", received)
        const messages = makeMessages(topic, 10_000)
        const pub = yield* publisher
        let next = 0
        let published = 0
        let restartedAt = 0
        const progress = new Received("publishers")
        const restarts = yield* Effect.forkChild(Effect.gen(function*() {
          for (const fraction of [1 / 3, 2 / 3]) {
            yield* progress.until(() => published >= messages.length * fraction, wait(60_000), () =>
              `${published} published`)
            restartedAt = Date.now()
            yield* restart
          }
        }))
        yield* Effect.forEach(Array.from({ length: 100 }), () =>
          Effect.gen(function*() {
            while (next < messages.length) {
              const message = messages[next++]
              if (message === undefined) {
                return
              }
              yield* pub.publish(topic, [message]).pipe(
                Effect.mapError((error) =>
                  new Error(
                    `publishing ${message.id} failed ${Date.now() - restartedAt} ms after a restart began: ${
                      String(error)
                    }`,
                    { cause: error }
                  )
                )
              )
              published++
              progress.record(message)
            }
          }), { concurrency: "unbounded", discard: true })
        yield* Fiber.join(restarts)
        yield* received.untilAll(idsOf(messages), wait(60_000))
      })
  }
]

// -----------------------------------------------------------------------------
// The suite
// -----------------------------------------------------------------------------

/** Fails the case if a promise rejection went unhandled while it ran. */
const noUnhandledRejections = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const rejections: Array<unknown> = []
    const listener = (reason: unknown) => void rejections.push(reason)
    yield* Effect.acquireRelease(
      Effect.sync(() => process.on("unhandledRejection", listener)),
      () => Effect.sync(() => process.off("unhandledRejection", listener))
    )
    const result = yield* self
    // rejections are reported after the microtask queue drains
    yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
    assert.deepStrictEqual(rejections.map(String), [], "unhandled promise rejections")
    return result
  })

/**
 * Registers the conformance cases for one adapter: a `describe` block sharing `adapter` (one broker)
 * across its cases, run with live time. Cases that do not apply to `features` are registered as skipped,
 * named with the feature they need; `options.knownDefects` registers cases with `it.fails`.
 *
 * @example
 * ```ts
 * // test/bus.test.ts: an adapter over your own wrapper, on a throwaway server
 * import { suite } from "effect-nats/Conformance"
 *
 * suite("orders bus", OrdersBusAdapter.pipe(Layer.provide(LocalNats.layer())), {
 *   topology: "single",
 *   persistent: true,
 *   newSubscriberReceivesOldMessages: true,
 *   ordered: true,
 *   consumerGroups: true,
 *   exactlyOnce: false,
 *   redelivery: true,
 *   ackDeadline: "1 second",
 *   restartable: true
 * })
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const suite = <E>(
  name: string,
  adapter: Layer.Layer<Adapter, E>,
  features: Features,
  options: SuiteOptions = {}
): void => {
  describe(`conformance: ${name}`, () => {
    layer(adapter, { excludeTestServices: true, timeout: "60 seconds" })((it) => {
      let topics = 0
      const ctx: CaseContext = {
        features,
        topicName: (label) => `conf-${label}-${++topics}`,
        wait: (millis) => Duration.millis(features.topology === "cluster" ? millis * 2 : millis)
      }
      for (const c of cases) {
        const reason = c.skip(features)
        const defect = options.knownDefects?.[c.name]
        const test = () => noUnhandledRejections(c.run(ctx))
        if (reason !== undefined) it.effect.skip(`${c.title} [skipped: ${reason}]`, test)
        else if (defect !== undefined) {
          it.effect.fails(`${c.title} [known defect: ${defect}]`, test, c.timeout(features))
        } else it.effect(c.title, test, c.timeout(features))
      }
    })
  })
}
