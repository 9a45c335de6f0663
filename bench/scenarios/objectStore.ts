/**
 * Object Store scenarios, on one 256 MiB object (32 MiB in a quick run) in a
 * file store, 128 KiB chunks:
 *
 * - `obj-put`: the object put from 1 MiB pieces (raw: nats.js `os.put` of a
 *   ReadableStream; effect: `ObjectStore.put` of a Stream), in this process.
 * - `obj-get`: read back to the end as fast as possible, in a child process
 *   each (bench/object-reader.ts), digest checked by both: MB/s and peak RSS
 *   growth.
 * - `obj-get-slow-reader`: the same read at 1 ms per chunk: nats.js pushes
 *   every chunk into its ReadableStream as it arrives, whatever the reader
 *   does; ours pulls a few chunks at a time.
 */
import { Objm } from "@nats-io/obj"
import { Effect, Stream } from "effect"
import { fork } from "node:child_process"
import * as Path from "node:path"
import { NatsClient } from "../../src/index.ts"
import * as ObjectStore from "../../src/services/ObjectStore.ts"
import type { Context, Measurement, Scenario } from "../harness.ts"
import type { ReaderReport } from "../object-reader.ts"
import type { Clients } from "./core.ts"

const MB = 1024 * 1024
const bucket = "BENCH_OBJ"
const script = Path.resolve(import.meta.dirname, "../object-reader.ts")
const sizeOf = (ctx: Context) => (ctx.quick ? 32 : 256) * MB
const piece = new Uint8Array(MB).map((_, i) => i % 251)

const pieces = (size: number) => Array.from({ length: size / MB }, () => piece)

/** The pieces as a ReadableStream (what nats.js' put reads). */
const readable = (chunks: ReadonlyArray<Uint8Array>) => {
  let i = 0
  return new ReadableStream<Uint8Array>({
    pull: (c) => i < chunks.length ? c.enqueue(chunks[i++] ?? piece) : c.close()
  })
}

export const objectStoreScenarios = (clients: Clients): ReadonlyArray<Scenario> => {
  let stored: string | undefined
  let rawPuts = 0
  let ourPuts = 0
  /** The object the reads read (put once, by nats.js). */
  const object = async (ctx: Context) => {
    if (stored !== undefined) return stored
    const os = await new Objm(clients.rawPub).create(bucket, { storage: "file" as never })
    await os.put({ name: "read-me" }, readable(pieces(sizeOf(ctx))))
    stored = "read-me"
    return stored
  }
  const read = (side: "raw" | "effect", ctx: Context, mode: "fast" | "slow"): Promise<Measurement> =>
    object(ctx).then((name) =>
      new Promise((resolve, reject) => {
        const child = fork(script, [side, ctx.url, bucket, name, mode], {
          execArgv: ["--expose-gc"],
          stdio: ["ignore", "inherit", "inherit", "ipc"]
        })
        child.on("error", reject)
        child.on("exit", (code) => code === 0 ? undefined : reject(new Error(`object-reader ${side} exited ${code}`)))
        child.on("message", (message: ReaderReport) => {
          if (message.bytes !== sizeOf(ctx)) reject(new Error(`${side} read ${message.bytes} bytes`))
          else resolve({ "MB/s": message.mbPerSec, rss_mb: message.peakGrowthMb })
        })
      })
    )
  return [
    {
      name: "obj-put",
      description:
        "a 256 MiB object put from 1 MiB pieces, 128 KiB chunks, file storage (raw os.put vs ObjectStore.put)",
      metrics: ["MB/s"],
      targets: [{ metric: "MB/s", ratio: 0.9, text: ">= 0.90" }],
      // three pairs missed once at 0.88 and read 1.00 at nine (BENCHMARKS.md, fifteenth round)
      reps: 5,
      raw: async (ctx) => {
        const os = await new Objm(clients.rawPub).create(bucket, { storage: "file" as never })
        const source = readable(pieces(sizeOf(ctx)))
        const started = performance.now()
        await os.put({ name: `raw-${rawPuts++}` }, source)
        const seconds = (performance.now() - started) / 1000
        await os.delete(`raw-${rawPuts - 1}`)
        return { "MB/s": sizeOf(ctx) / MB / seconds }
      },
      effect: (ctx) =>
        Effect.runPromise(
          Effect.gen(function*() {
            const store = yield* ObjectStore.make({ bucket, config: { storage: "file" } })
            const name = `ours-${ourPuts++}`
            const started = performance.now()
            yield* store.put(name, Stream.fromIterable(pieces(sizeOf(ctx))))
            const seconds = (performance.now() - started) / 1000
            yield* store.delete(name)
            return { "MB/s": sizeOf(ctx) / MB / seconds }
          }).pipe(Effect.provideService(NatsClient.NatsClient, clients.pub))
        )
    },
    {
      name: "obj-get",
      description:
        "the 256 MiB object read to the end as fast as possible, digest checked, in a child process each: MB/s and peak RSS growth",
      metrics: ["MB/s", "rss_mb"],
      targets: [
        { metric: "MB/s", ratio: 0.9, text: ">= 0.90" },
        { metric: "rss_mb", max: 96, text: "effect <= 96 MB (well under the object)" }
      ],
      reps: 3,
      raw: (ctx) => read("raw", ctx, "fast"),
      effect: (ctx) => read("effect", ctx, "fast")
    },
    {
      name: "obj-get-slow-reader",
      description: "the same read at 1 ms per chunk (a slow reader): peak RSS growth",
      metrics: ["rss_mb"],
      targets: [{ metric: "rss_mb", max: 96, text: "effect <= 96 MB (well under the object)" }],
      reps: 1,
      raw: (ctx) => read("raw", ctx, "slow"),
      effect: (ctx) => read("effect", ctx, "slow")
    }
  ]
}
