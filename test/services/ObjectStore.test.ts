import { assert, describe, layer } from "@effect/vitest"
import { Effect, Fiber, Option, Schedule, Stream } from "effect"
import { createHash, randomBytes } from "node:crypto"
import { JetStreamManager, LocalNats, NatsClient, NatsServer } from "../../src/index.ts"
import * as ObjectStore from "../../src/services/ObjectStore.ts"
import * as FaultProxy from "../support/faultProxy.ts"

let n = 0
const fresh = (prefix: string) => `${prefix}-${++n}-${Math.random().toString(36).slice(2, 8)}`

const reasonOf = (e: unknown) =>
  typeof e === "object" && e !== null && "reason" in e ? (e as { reason: { _tag: string } }).reason._tag : String(e)

/** `total` random bytes as a Stream of pieces of uneven sizes (none lines up with a chunk). */
const bytesStream = (total: number) => {
  const data = randomBytes(total)
  const pieces: Array<Uint8Array> = []
  for (let at = 0, i = 0; at < total; i++) {
    const size = Math.min(total - at, 1 + ((i * 7919) % 50_000))
    pieces.push(data.subarray(at, at + size))
    at += size
  }
  return { data, stream: Stream.fromIterable(pieces) }
}

const collect = (stream: Stream.Stream<Uint8Array, unknown>) =>
  Effect.map(Stream.runCollect(stream), (chunks) => Buffer.concat(chunks))

describe("ObjectStore", () => {
  layer(LocalNats.layer(), { excludeTestServices: true })("on a real server", (it) => {
    it.effect("put from a Stream and get as a Stream: same bytes, chunked, digest checked; nats.js reads it too", () =>
      Effect.gen(function*() {
        const store = yield* ObjectStore.make({ bucket: fresh("obj"), config: { storage: "memory" } })
        const { data, stream } = bytesStream(1_000_000)
        const info = yield* store.put("blob", stream, { chunkSize: 64 * 1024, description: "random" })
        assert.strictEqual(info.size, data.length)
        assert.strictEqual(info.chunks, Math.ceil(data.length / (64 * 1024)))
        assert.strictEqual(info.digest, `SHA-256=${createHash("sha256").update(data).digest("base64url")}=`)
        const read = yield* collect(store.get("blob"))
        assert.isTrue(read.equals(data))
        // interop: nats.js reads what we stored, we read what nats.js stored
        const raw = yield* Effect.promise(() => store.raw.getBlob("blob"))
        assert.isTrue(raw !== null && Buffer.from(raw).equals(data))
        yield* Effect.promise(() => store.raw.putBlob({ name: "theirs" }, new Uint8Array([1, 2, 3])))
        assert.deepStrictEqual(Option.map(yield* store.getBytes("theirs"), (b) => [...b]), Option.some([1, 2, 3]))
        // empty objects
        yield* store.putBytes("empty", new Uint8Array(0))
        assert.deepStrictEqual(Option.map(yield* store.getBytes("empty"), (b) => b.length), Option.some(0))
      }))

    it.effect("info, list, update (metadata, headers, rename), link, delete; a missing object is typed", () =>
      Effect.gen(function*() {
        const store = yield* ObjectStore.make({ bucket: fresh("obj"), config: {} })
        const put = yield* store.putBytes("a.txt", new TextEncoder().encode("hello"), {
          headers: { "Content-Type": "text/plain" },
          metadata: { owner: "ops" }
        })
        const info = Option.getOrThrow(yield* store.info("a.txt"))
        assert.strictEqual(info.size, 5)
        assert.strictEqual(info.metadata?.owner, "ops")
        assert.strictEqual(info.headers?.get("Content-Type"), "text/plain")
        assert.strictEqual(info.revision, put.revision)
        yield* store.update("a.txt", { name: "b.txt", description: "renamed" })
        assert.isTrue(Option.isNone(yield* store.info("a.txt")))
        const renamed = Option.getOrThrow(yield* store.info("b.txt"))
        // what the update did not name is kept
        assert.deepStrictEqual([renamed.description, renamed.metadata?.owner, renamed.headers?.get("Content-Type")], [
          "renamed",
          "ops",
          "text/plain"
        ])
        // a link reads its target, in this store or another
        const other = yield* ObjectStore.make({ bucket: fresh("obj"), config: {} })
        yield* other.link("to-b", Option.getOrThrow(yield* store.info("b.txt")))
        assert.strictEqual(
          new TextDecoder().decode(Buffer.concat(yield* Stream.runCollect(other.get("to-b")))),
          "hello"
        )
        yield* store.putBytes("c.bin", new Uint8Array([9]))
        assert.deepStrictEqual((yield* Stream.runCollect(store.list)).map((i) => i.name).sort(), ["b.txt", "c.bin"])
        yield* store.delete("c.bin")
        assert.deepStrictEqual((yield* Stream.runCollect(store.list)).map((i) => i.name), ["b.txt"])
        assert.isTrue(Option.isNone(yield* store.getBytes("c.bin")))
        assert.strictEqual(reasonOf(yield* Effect.flip(Stream.runCollect(store.get("c.bin")))), "ObjectNotFound")
        assert.strictEqual(reasonOf(yield* Effect.flip(store.delete("c.bin"))), "ObjectNotFound")
        assert.strictEqual(reasonOf(yield* Effect.flip(store.putBytes("", new Uint8Array(1)))), "InvalidArgument")
        assert.strictEqual(reasonOf(yield* Effect.flip(ObjectStore.make({ bucket: "no.dots" }))), "InvalidArgument")
        assert.strictEqual(
          reasonOf(yield* Effect.flip(store.putBytes("x", new Uint8Array(1), { headers: { "bad:name": "v" } }))),
          "InvalidArgument"
        )
      }))

    it.effect("a corrupted or lost chunk fails the read with DigestMismatch, never reads as complete", () =>
      Effect.gen(function*() {
        const bucket = fresh("obj")
        const store = yield* ObjectStore.make({ bucket, config: {} })
        const jsm = yield* JetStreamManager.make()
        const { stream } = bytesStream(300_000)
        yield* store.put("altered", stream, { chunkSize: 100_000 })
        const raw = yield* Effect.promise(() => store.raw.info("altered"))
        const chunks = `$O.${bucket}.C.${raw?.nuid}`
        // the last chunk replaced by other bytes of the same size
        const last = Option.getOrThrow(yield* jsm.getMessage(`OBJ_${bucket}`, { lastBySubject: chunks }))
        yield* Effect.promise(() => jsm.manager.streams.deleteMessage(`OBJ_${bucket}`, last.seq))
        yield* Effect.promise(() => jsm.client.publish(chunks, randomBytes(last.data.length)))
        const altered = yield* Effect.flip(collect(store.get("altered")))
        assert.strictEqual(reasonOf(altered), "DigestMismatch")
        // a chunk lost
        yield* store.put("lost", bytesStream(300_000).stream, { chunkSize: 100_000 })
        const lostInfo = yield* Effect.promise(() => store.raw.info("lost"))
        const lostChunks = `$O.${bucket}.C.${lostInfo?.nuid}`
        const lastLost = Option.getOrThrow(yield* jsm.getMessage(`OBJ_${bucket}`, { lastBySubject: lostChunks }))
        yield* Effect.promise(() => jsm.manager.streams.deleteMessage(`OBJ_${bucket}`, lastLost.seq))
        const lost = yield* Effect.flip(collect(store.get("lost")).pipe(Effect.timeout("10 seconds")))
        assert.strictEqual(reasonOf(lost), "DigestMismatch")
      }))

    it.effect("a get through a cut connection reads on after the last chunk received: same bytes", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        const bucket = fresh("obj")
        const store = yield* ObjectStore.make({ bucket, config: {} })
        const { data, stream } = bytesStream(4_000_000)
        yield* store.put("big", stream)
        const proxy = yield* FaultProxy.make(server.url)
        const client = yield* NatsClient.make({
          servers: proxy.url,
          reconnectSchedule: Schedule.spaced("100 millis"),
          logEvents: false
        })
        const viaProxy = yield* ObjectStore.make({ bucket }).pipe(Effect.provideService(NatsClient.NatsClient, client))
        let chunks = 0
        const read = yield* collect(
          viaProxy.get("big").pipe(Stream.tap(() => ++chunks === 5 ? proxy.cut() : Effect.void))
        ).pipe(Effect.timeout("30 seconds"))
        assert.isTrue(read.equals(data))
        assert.isAtLeast(proxy.accepted(), 2, "the connection was cut")
      }))

    it.effect("a put whose Stream fails fails with that error, and stores nothing", () =>
      Effect.gen(function*() {
        const bucket = fresh("obj")
        const store = yield* ObjectStore.make({ bucket, config: {} })
        const failing = Stream.concat(bytesStream(500_000).stream, Stream.fail("disk error" as const))
        const error = yield* Effect.flip(store.put("partial", failing, { chunkSize: 64 * 1024 }))
        assert.strictEqual(error, "disk error")
        assert.isTrue(Option.isNone(yield* store.info("partial")))
        const jsm = yield* JetStreamManager.make()
        // no orphan chunks left behind
        assert.strictEqual((yield* jsm.streamInfo(`OBJ_${bucket}`)).state.messages, 0)
      }))

    it.effect("watch: what is there (includeHistory), then puts and deletions as they happen", () =>
      Effect.gen(function*() {
        const store = yield* ObjectStore.make({ bucket: fresh("obj"), config: {} })
        yield* store.putBytes("first", new Uint8Array([1]))
        const seen = yield* store.watch({ includeHistory: true }).pipe(
          Stream.take(3),
          Stream.map((i) => [i.name, i.deleted] as const),
          Stream.runCollect,
          Effect.forkChild
        )
        yield* Effect.sleep("200 millis")
        yield* store.putBytes("second", new Uint8Array([2]))
        yield* store.delete("first")
        assert.deepStrictEqual(yield* Fiber.join(seen).pipe(Effect.timeout("10 seconds")), [
          ["first", false],
          ["second", false],
          ["first", true]
        ])
      }))
  })
})
