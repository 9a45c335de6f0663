/**
 * A file store on an Object Store: a large file uploaded from disk and
 * downloaded back to disk, both as Streams, with the process's memory
 * sampled throughout: it grows by a few chunks, not by the file's size.
 *
 * Run: npm run example -- file-store [size in MiB, default 64]
 */
import { Effect, Fiber, Schedule, Stream } from "effect"
import { createHash, randomBytes } from "node:crypto"
import { once } from "node:events"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { LocalNats, ObjectStore } from "../src/index.ts"

const MiB = 1024 * 1024

/** A file of `size` bytes of random data, written a MiB at a time. */
const writeFile = (path: string, size: number) =>
  Effect.promise(async () => {
    const out = Fs.createWriteStream(path)
    const block = randomBytes(MiB)
    for (let left = size; left > 0; left -= MiB) {
      if (!out.write(left >= MiB ? block : block.subarray(0, left))) await once(out, "drain")
    }
    out.end()
    await once(out, "finish")
  })

const digestOf = (path: string) =>
  Effect.promise(async () => {
    const hash = createHash("sha256")
    for await (const chunk of Fs.createReadStream(path)) hash.update(chunk as Buffer)
    return hash.digest("hex")
  })

/** A file as a Stream of its bytes (Node reads it 64 KiB at a time). */
const fromFile = (path: string) =>
  Stream.fromAsyncIterable(Fs.createReadStream(path), (cause) => new Error(`reading ${path}: ${String(cause)}`)).pipe(
    Stream.map((chunk) => chunk as Uint8Array)
  )

/** Writes a Stream of bytes to a file, waiting for the disk when it is behind. */
const toFile = <E>(path: string, bytes: Stream.Stream<Uint8Array, E>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => Fs.createWriteStream(path)),
    (out) =>
      Stream.runForEach(bytes, (chunk) =>
        Effect.promise(async () => {
          if (!out.write(chunk)) await once(out, "drain")
        })),
    (out) => Effect.promise(() => new Promise<void>((resolve) => out.end(resolve)))
  )

/** The largest growth of the resident set over `baseline` while `effect` runs (sampled every 50 ms). */
const peakGrowth = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const baseline = process.memoryUsage().rss
    let peak = baseline
    const sampler = yield* Effect.sync(() => {
      peak = Math.max(peak, process.memoryUsage().rss)
    }).pipe(Effect.repeat(Schedule.spaced("50 millis")), Effect.forkChild)
    const result = yield* effect
    yield* Fiber.interrupt(sampler)
    return { result, growth: Math.max(0, peak - baseline) }
  })

export const program = (sizeMiB = 64) =>
  Effect.gen(function*() {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "file-store-"))
    yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
    const original = Path.join(dir, "backup.bin")
    const copy = Path.join(dir, "restored.bin")
    yield* writeFile(original, sizeMiB * MiB)
    const files = yield* ObjectStore.make({ bucket: "files", config: {} })
    const upload = yield* peakGrowth(
      files.put("backup.bin", fromFile(original), { headers: { "Content-Type": "application/octet-stream" } })
    )
    const info = upload.result
    yield* Effect.log(
      `uploaded ${info.name}: ${(info.size / MiB).toFixed(0)} MiB in ${info.chunks} chunks, ${info.digest}; ` +
        `memory grew by ${(upload.growth / MiB).toFixed(1)} MiB`
    )
    const download = yield* peakGrowth(toFile(copy, files.get("backup.bin")))
    const same = (yield* digestOf(original)) === (yield* digestOf(copy))
    yield* Effect.log(
      `downloaded it back (digest checked on the way): ${same ? "identical" : "DIFFERENT"}; ` +
        `memory grew by ${(download.growth / MiB).toFixed(1)} MiB`
    )
    return { size: info.size, same, uploadGrowth: upload.growth, downloadGrowth: download.growth }
  })

const size = Number(process.argv[3] ?? 64)
export const main = Effect.scoped(program(Number.isFinite(size) && size > 0 ? size : 64)).pipe(
  Effect.provide(LocalNats.layerConfig())
)
