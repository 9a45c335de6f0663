/**
 * `slow-subscriber-memory`: messages published much faster than a
 * 20 µs/message consumer drains them. Each side runs in its own child process
 * (bench/slow-subscriber.ts), which reports its peak RSS growth over a
 * baseline taken after setup. Raw: the nats.js async iterator, which buffers
 * without bound; effect: `subscribe` with a bounded buffer that drops the
 * oldest messages when full.
 */
import { fork } from "node:child_process"
import * as Path from "node:path"
import type { Context, Measurement, Scenario } from "../harness.ts"
import type { ChildReport } from "../slow-subscriber.ts"
import type { Clients } from "./core.ts"

const script = Path.resolve(import.meta.dirname, "../slow-subscriber.ts")
const bufferSize = 10_000
let subjectSeq = 0

export const memoryScenarios = (clients: Clients): ReadonlyArray<Scenario> => {
  const { rawPub } = clients
  const count = (ctx: Context) => ctx.quick ? 50_000 : 500_000
  const dropped: Array<number> = []

  const run = (side: "raw" | "effect", ctx: Context, nodeFlags: ReadonlyArray<string> = []): Promise<Measurement> =>
    new Promise((resolve, reject) => {
      const n = count(ctx)
      const subject = `bench.slow.${subjectSeq++}`
      const child = fork(script, [side, ctx.url, subject, String(n), String(bufferSize)], {
        execArgv: ["--expose-gc", ...nodeFlags],
        stdio: ["ignore", "inherit", "inherit", "ipc"]
      })
      child.on("error", reject)
      child.on("exit", (code) => code === 0 ? undefined : reject(new Error(`slow-subscriber ${side} exited ${code}`)))
      child.on("message", (message: { readonly type: string }) => {
        if (message.type === "ready") {
          void (async () => {
            for (let i = 0; i < n; i++) {
              // a fresh payload each: nats.js may keep a reference in its outbound buffer until it is written
              const payload = new Uint8Array(128).fill(97)
              new DataView(payload.buffer).setUint32(0, i)
              rawPub.publish(subject, payload)
            }
            await rawPub.flush()
          })().catch(reject)
        } else if (message.type === "done") {
          const report = message as ChildReport
          if (!report.complete) console.log(`   ${side}: did not see the last message (received ${report.received})`)
          if (side === "effect" && nodeFlags.length === 0) dropped.push(n - report.received)
          if (process.env.BENCH_VERBOSE === "1") {
            console.log(
              `   ${side}: received ${report.received} in ${report.seconds.toFixed(1)} s, peak heap +${
                report.peakHeapMb.toFixed(1)
              } MB, array buffers +${report.peakArrayBuffersMb.toFixed(1)} MB`
            )
          }
          resolve({ rss_mb: report.peakGrowthMb })
        }
      })
    })

  const slow: Scenario = {
    name: "slow-subscriber-memory",
    description:
      `500,000 x 128 B published faster than a 20 µs/message consumer drains them; peak RSS growth in a child process (raw: async iterator; effect: subscribe, bufferSize ${bufferSize}, dropOldest)`,
    metrics: ["rss_mb"],
    targets: [{ metric: "rss_mb", max: 64, text: "effect <= 64 MB" }],
    reps: 3,
    raw: (ctx) => run("raw", ctx),
    effect: (ctx) => run("effect", ctx),
    extra: () => ({
      effect_buffer: `${bufferSize} messages, dropOldest`,
      effect_dropped_per_run: dropped.join(", ")
    })
  }
  // The same with V8's young generation capped on both sides: what is left is the buffers themselves. Under
  // default flags, V8 sizes its semi-spaces from what survives its scavenges (a buffer of nats.js messages
  // used to double them: internal/messageRing).
  const semiSpace = ["--max-semi-space-size=16"]
  const slowCapped: Scenario = {
    name: "slow-subscriber-memory-semispace16",
    description: `the same, both child processes run with ${semiSpace.join(" ")} (V8's young generation capped)`,
    metrics: ["rss_mb"],
    targets: [{ metric: "rss_mb", max: 64, text: "effect <= 64 MB" }],
    reps: 3,
    raw: (ctx) => run("raw", ctx, semiSpace),
    effect: (ctx) => run("effect", ctx, semiSpace)
  }
  return [slow, slowCapped]
}
