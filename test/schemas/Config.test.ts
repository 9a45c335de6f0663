// Stream and consumer configuration schemas: the wire round trip, and the read-back from a real server.
import { assert, describe, it, layer } from "@effect/vitest"
import type { ConsumerConfig as NatsConsumerConfig, StreamConfig as NatsStreamConfig } from "@nats-io/jetstream"
import { Arbitrary, Duration, Effect, Layer, Schema } from "effect"
import { LocalNats } from "../../src/index.ts"
import * as ConsumerConfig from "../../src/schemas/ConsumerConfig.ts"
import * as StreamConfig from "../../src/schemas/StreamConfig.ts"
import * as JetStreamManager from "../../src/services/JetStreamManager.ts"

const streamEquivalence = Schema.toEquivalence(StreamConfig.StreamConfig)
const consumerEquivalence = Schema.toEquivalence(ConsumerConfig.ConsumerConfig)

/** Encodes to the wire shape and decodes it back. */
const roundTrip = <T, E>(schema: Schema.Codec<T, E>) => {
  const encode = Schema.encodeSync(schema)
  const decode = Schema.decodeUnknownSync(schema)
  return (value: T): { readonly wire: E; readonly back: T } => {
    const wire = encode(value)
    return { wire, back: decode(wire) }
  }
}
const streamRoundTrip = roundTrip(StreamConfig.StreamConfig)
const consumerRoundTrip = roundTrip(ConsumerConfig.ConsumerConfig)

const hasUndefined = (wire: object): boolean => Object.values(wire).includes(undefined)

describe("StreamConfig schema", () => {
  it("declares the nats.js wire shape: snake_case keys, nanoseconds", () => {
    const wire = StreamConfig.toNats({
      name: "ORDERS",
      subjects: ["orders.>"],
      description: "orders",
      retention: "limits",
      storage: "file",
      replicas: 1,
      maxAge: Duration.days(7),
      maxBytes: 1024,
      maxMsgs: 10,
      maxMsgsPerSubject: 2,
      maxMsgSize: 512,
      maxConsumers: 3,
      discard: "new",
      discardNewPerSubject: true,
      duplicateWindow: Duration.seconds(30),
      denyDelete: true,
      denyPurge: false,
      allowRollup: true,
      allowDirect: true,
      noAck: false
    })
    assert.deepStrictEqual(wire, {
      name: "ORDERS",
      subjects: ["orders.>"],
      description: "orders",
      retention: "limits",
      storage: "file",
      num_replicas: 1,
      max_age: 7 * 24 * 3600 * 1e9,
      max_bytes: 1024,
      max_msgs: 10,
      max_msgs_per_subject: 2,
      max_msg_size: 512,
      max_consumers: 3,
      discard: "new",
      discard_new_per_subject: true,
      duplicate_window: 30e9,
      deny_delete: true,
      deny_purge: false,
      allow_rollup_hdrs: true,
      allow_direct: true,
      no_ack: false
    })
  })

  it.prop("decode(encode(c)) is c; unset fields are absent on the wire", [StreamConfig.StreamConfig], ([config]) => {
    const { back, wire } = streamRoundTrip(config)
    assert.isTrue(streamEquivalence(back, config))
    assert.isFalse(hasUndefined(wire))
  }, { arbitrary: { runs: 500 } })

  it.prop("fromNats(toNats(c)) has every field of c (diff is empty)", [StreamConfig.StreamConfig], ([config]) => {
    assert.deepStrictEqual(
      StreamConfig.diff(config, StreamConfig.fromNats(StreamConfig.toNats(config) as NatsStreamConfig)),
      []
    )
  })

  it("diff: a field the server leaves out equals a requested zero value; durations compare by length", () => {
    const current = StreamConfig.fromNats({ name: "S", subjects: ["s"], max_age: 60e9 } as NatsStreamConfig)
    assert.deepStrictEqual(
      StreamConfig.diff(
        { name: "S", subjects: ["s"], description: "", noAck: false, maxAge: Duration.minutes(1) },
        current
      ),
      []
    )
    assert.deepStrictEqual(
      StreamConfig.diff({ name: "S", subjects: ["s", "t"], description: "d", maxAge: Duration.seconds(1) }, current),
      ["subjects", "description", "maxAge"]
    )
  })
})

describe("ConsumerConfig schema", () => {
  it("declares the nats.js wire shape; the start position is spread over three wire keys", () => {
    const wire = ConsumerConfig.toNats({
      durable: "worker",
      filterSubject: "orders.>",
      ackWait: Duration.seconds(30),
      backoff: [Duration.seconds(1), Duration.millis(1500)],
      deliverPolicy: ConsumerConfig.deliver.startTime(new Date("2024-01-02T03:04:05.678Z")),
      maxAckPending: 100,
      inactiveThreshold: Duration.minutes(5),
      replicas: 1,
      memoryStorage: true,
      deliverSubject: "deliver.worker",
      deliverGroup: "workers",
      flowControl: false,
      idleHeartbeat: Duration.seconds(5)
    })
    assert.deepStrictEqual(wire, {
      ack_policy: "explicit",
      durable_name: "worker",
      filter_subject: "orders.>",
      ack_wait: 30e9,
      backoff: [1e9, 1.5e9],
      deliver_policy: "by_start_time",
      opt_start_time: "2024-01-02T03:04:05.678Z",
      max_ack_pending: 100,
      inactive_threshold: 300e9,
      num_replicas: 1,
      mem_storage: true,
      deliver_subject: "deliver.worker",
      deliver_group: "workers",
      flow_control: false,
      idle_heartbeat: 5e9
    })
    assert.deepStrictEqual(ConsumerConfig.toNats({ deliverPolicy: ConsumerConfig.deliver.startSequence(7) }), {
      ack_policy: "explicit",
      deliver_policy: "by_start_sequence",
      opt_start_seq: 7
    })
  })

  it.prop(
    "decode(encode(c)) is c; unset fields are absent on the wire",
    [ConsumerConfig.ConsumerConfig],
    ([config]) => {
      const { back, wire } = consumerRoundTrip(config)
      assert.isTrue(consumerEquivalence(back, config))
      assert.isFalse(hasUndefined(wire))
    },
    { arbitrary: { runs: 500 } }
  )

  it.prop("fromNats(toNats(c)) has every field of c (diff is empty)", [ConsumerConfig.ConsumerConfig], ([config]) => {
    assert.deepStrictEqual(
      ConsumerConfig.diff(config, ConsumerConfig.fromNats(ConsumerConfig.toNats(config) as NatsConsumerConfig)),
      []
    )
  })

  it("fromNats: omitted booleans read back as false, unknown ack and start policies as their nearest meaning, a wrong type throws", () => {
    const config = ConsumerConfig.fromNats(
      { durable_name: "c", ack_policy: "flow_control", deliver_policy: "new" } as NatsConsumerConfig
    )
    assert.deepStrictEqual(config, {
      durable: "c",
      ackPolicy: "explicit",
      deliverPolicy: ConsumerConfig.deliver.new,
      headersOnly: false,
      memoryStorage: false,
      flowControl: false
    })
    // an incomplete or unknown start position reads as before the Schema: sequence 1, all messages
    assert.deepStrictEqual(
      ConsumerConfig.fromNats({ deliver_policy: "by_start_sequence" } as NatsConsumerConfig).deliverPolicy,
      ConsumerConfig.deliver.startSequence(1)
    )
    assert.deepStrictEqual(
      ConsumerConfig.fromNats({ deliver_policy: "by_something_new" } as unknown as NatsConsumerConfig).deliverPolicy,
      ConsumerConfig.deliver.all
    )
    assert.throws(() => ConsumerConfig.fromNats({ max_deliver: "many" } as unknown as NatsConsumerConfig))
  })
})

// -----------------------------------------------------------------------------
// Against nats-server 2.9.10
// -----------------------------------------------------------------------------

const Live = JetStreamManager.JetStreamManager.layer.pipe(Layer.provideMerge(LocalNats.layer()))

/** At least `min`; zero (which the server reads as "unset") stays zero. */
const atLeast = (min: Duration.Duration) => (d: Duration.Duration | undefined): Duration.Duration | undefined =>
  d === undefined || Duration.isZero(d) ? d : Duration.max(d, min)

/** What the server stores for text: JSON through Go replaces lone UTF-16 surrogates with U+FFFD. */
const wellFormed = (s: string | undefined): string | undefined => s?.replace(/[\ud800-\udfff]/gu, "\ufffd")

/** An integer limit: the server reads `0` as "unset" and reports `-1`. */
const limit = (n: number | undefined): number | undefined => n === 0 ? -1 : n

/**
 * A generated stream configuration narrowed to what nats-server 2.9.10 takes
 * and reports back as given (the test assigns `name` and `subjects`).
 * Durations keep their nanoseconds: the server stores what it is sent.
 * - `replicas` 1: a single node refuses more;
 * - `maxAge` and `duplicateWindow` at least 100 ms (refused below); the
 *   window no longer than `maxAge` (refused) and never zero (read back as 2 minutes);
 * - integer limits never 0 (read back as -1), `maxBytes` at most 1 MiB (the
 *   server refuses reservations beyond its storage);
 * - `discardNewPerSubject` needs `discard: "new"` and `maxMsgsPerSubject` > 0;
 *   `allowRollup` needs the purge permission (`denyPurge` not true);
 * - `description` well-formed UTF-16 (lone surrogates read back as U+FFFD).
 */
const acceptedStream = (c: StreamConfig.StreamConfig): StreamConfig.StreamConfig => {
  const maxAge = atLeast(Duration.millis(100))(c.maxAge)
  const window = c.duplicateWindow === undefined ? undefined : Duration.max(c.duplicateWindow, Duration.millis(100))
  const perSubjectDiscard = c.discardNewPerSubject === true
  const maxBytes = limit(c.maxBytes)
  return {
    ...c,
    description: wellFormed(c.description),
    replicas: c.replicas === undefined ? undefined : 1,
    maxAge,
    duplicateWindow: window === undefined || maxAge === undefined || Duration.isZero(maxAge)
      ? window
      : Duration.min(window, maxAge),
    maxBytes: maxBytes === undefined ? undefined : Math.min(maxBytes, 2 ** 20),
    maxMsgs: limit(c.maxMsgs),
    maxMsgsPerSubject: perSubjectDiscard ? Math.max(c.maxMsgsPerSubject ?? 1, 1) : limit(c.maxMsgsPerSubject),
    maxMsgSize: limit(c.maxMsgSize),
    maxConsumers: limit(c.maxConsumers),
    discard: perSubjectDiscard ? "new" : c.discard,
    denyPurge: c.allowRollup === true ? false : c.denyPurge
  }
}

/** Push-only fields on a pull consumer, pull-only ones on a push consumer, and what a queue group excludes. */
const consistentMode = (c: ConsumerConfig.ConsumerConfig): ConsumerConfig.ConsumerConfig => {
  const push = c.deliverSubject !== undefined
  // nats.js refuses flow control and heartbeats with a queue group; the server wants heartbeats with flow control
  const heartbeats = push && c.deliverGroup === undefined
  const flowControl = heartbeats ? c.flowControl : undefined
  const idleHeartbeat = heartbeats ? atLeast(Duration.millis(100))(c.idleHeartbeat) : undefined
  return {
    ...c,
    maxWaiting: push ? undefined : c.maxWaiting,
    flowControl,
    idleHeartbeat: flowControl === true && (idleHeartbeat === undefined || Duration.isZero(idleHeartbeat))
      ? Duration.seconds(5)
      : idleHeartbeat
  }
}

/**
 * A generated consumer configuration narrowed to what nats-server 2.9.10
 * takes and reports back as given (the test assigns `durable`,
 * `filterSubject` and `deliverSubject`):
 * - `replicas` 0 or 1 (a single node refuses more);
 * - `maxDeliver` never 0 (read back as -1) and above the number of `backoff`
 *   steps (refused otherwise, -1 included); with a `backoff` the server sets
 *   `ackWait` to its first step, so that is what is asked;
 * - `ackWait` never zero (read back as 30 s); `maxAckPending` never 0 (read
 *   back as 1000) and unset with `ackPolicy: "none"` (refused);
 * - `maxExpires` at least 1 ms, `idleHeartbeat` at least 100 ms (refused
 *   below); `inactiveThreshold` at least a minute: the server removes an
 *   inactive durable too, and this one must outlive the test;
 * - push consumers (a `deliverSubject`) take no `maxWaiting`; flow control
 *   and heartbeats only on push consumers without a queue group;
 * - a start time within years 1970–2100 (far dates are refused as invalid
 *   JSON); text well-formed UTF-16.
 */
const acceptedConsumer = (c: ConsumerConfig.ConsumerConfig): ConsumerConfig.ConsumerConfig => {
  const backoff = c.backoff ?? []
  const maxDeliver = limit(c.maxDeliver)
  const policy = c.deliverPolicy
  return consistentMode({
    ...c,
    description: wellFormed(c.description),
    deliverGroup: wellFormed(c.deliverGroup),
    replicas: c.replicas === undefined ? undefined : Math.min(c.replicas, 1),
    maxDeliver: backoff.length > 0 && (maxDeliver === undefined || maxDeliver === -1 || maxDeliver <= backoff.length)
      ? backoff.length + 1
      : maxDeliver,
    ackWait: backoff[0] ?? (c.ackWait === undefined ? undefined : Duration.max(c.ackWait, Duration.nanos(1n))),
    maxAckPending: c.ackPolicy === "none" ? undefined : limit(c.maxAckPending),
    maxExpires: atLeast(Duration.millis(1))(c.maxExpires),
    inactiveThreshold: atLeast(Duration.minutes(1))(c.inactiveThreshold),
    deliverPolicy: policy?._tag === "StartTime"
      ? ConsumerConfig.deliver.startTime(new Date(Math.abs(policy.time.getTime()) % Date.UTC(2100, 0, 1)))
      : policy
  })
}

const serverStreams = Arbitrary.schema(StreamConfig.StreamConfig).pipe(Arbitrary.map(acceptedStream))
const serverConsumers = Arbitrary.schema(ConsumerConfig.ConsumerConfig).pipe(Arbitrary.map(acceptedConsumer))

let run = 0

describe("config schemas on a real server", () => {
  layer(Live, { excludeTestServices: true })("nats-server 2.9", (it) => {
    it.effect.prop(
      "a generated stream config reads back with every set field as requested; creating it again changes nothing",
      [serverStreams],
      ([generated]) =>
        Effect.gen(function*() {
          const jsm = yield* JetStreamManager.JetStreamManager
          const n = ++run
          const config: StreamConfig.StreamConfig = {
            ...generated,
            name: `PROP_S${n}`,
            subjects: [`props${n}.a`, `props${n}.b.>`]
          }
          const created = yield* jsm.createOrUpdateStream(config)
          assert.deepStrictEqual(StreamConfig.diff(config, created.config), [])
          const read = yield* jsm.streamInfo(config.name)
          assert.deepStrictEqual(StreamConfig.diff(config, read.config), [])
          // the change detection (the diff above) finds nothing to send: the same stream comes back
          const again = yield* jsm.createOrUpdateStream(config)
          assert.strictEqual(again.created.getTime(), created.created.getTime())
          assert.isTrue(streamEquivalence(again.config, read.config))
          yield* jsm.deleteStream(config.name)
        }),
      { arbitrary: { runs: 20, size: 40 } }
    )

    it.effect.prop(
      "a generated consumer config reads back with every set field as requested; creating it again changes nothing",
      [serverConsumers],
      ([generated]) =>
        Effect.gen(function*() {
          const jsm = yield* JetStreamManager.JetStreamManager
          const n = ++run
          yield* jsm.createOrUpdateStream({ name: "PROP_C", subjects: ["propc.>"] })
          const needsFilter = generated.deliverPolicy?._tag === "LastPerSubject"
          const config: ConsumerConfig.ConsumerConfig = {
            ...generated,
            durable: `c${n}`,
            filterSubject: generated.filterSubject === undefined && !needsFilter ? undefined : `propc.${n}`,
            deliverSubject: generated.deliverSubject === undefined ? undefined : `propdeliver.${n}`
          }
          const created = yield* jsm.createOrUpdateConsumer("PROP_C", config)
          assert.deepStrictEqual(ConsumerConfig.diff(config, created.config), [])
          const read = yield* jsm.consumerInfo("PROP_C", `c${n}`)
          assert.deepStrictEqual(ConsumerConfig.diff(config, read.config), [])
          const again = yield* jsm.createOrUpdateConsumer("PROP_C", config)
          assert.strictEqual(again.created.getTime(), created.created.getTime())
          assert.isTrue(consumerEquivalence(again.config, read.config))
          yield* jsm.deleteConsumer("PROP_C", `c${n}`)
        }),
      { arbitrary: { runs: 25, size: 40 } }
    )
  })
})
