import { fork } from "node:child_process"
import * as Path from "node:path"
import { Effect, Exit, Scope } from "effect"
import { NatsServer } from "../../src/index.ts"
import { openClients } from "../scenarios/core.ts"
const n = 500_000
const extra = (process.argv[2] ?? "").split(" ").filter(Boolean)
const side = process.argv[3] ?? "effect"
const bufferSize = process.argv[4] ?? "10000"
const scope = Effect.runSync(Scope.make())
const server = await Effect.runPromise(Scope.provide(scope)(NatsServer.make({})))
const { rawPub, close } = await openClients(server.url)
for (let rep = 0; rep < 2; rep++) {
  await new Promise<void>((resolve) => {
    const subject = `slow.${rep}`
    const child = fork(Path.resolve(import.meta.dirname, "../slow-subscriber.ts"), [side, server.url, subject, String(n), bufferSize], { execArgv: ["--expose-gc", ...extra], stdio: ["ignore", "pipe", "inherit", "ipc"] })
    let gcLines: string[] = []
    child.stdout!.on("data", (d: Buffer) => { gcLines.push(...d.toString().split("\n").filter((l) => l.includes("Mark-Compact") || l.includes("Scavenge"))) })
    child.on("message", (m: any) => {
      if (m.type === "ready") { for (let i = 0; i < n; i++) { const p = new Uint8Array(128).fill(97); new DataView(p.buffer).setUint32(0, i); rawPub.publish(subject, p) } void rawPub.flush() }
      else if (m.type === "done") {
        const mc = gcLines.filter((l) => l.includes("Mark-Compact"))
        console.log(JSON.stringify({ received: m.received, rss: m.peakGrowthMb.toFixed(1), heap: m.peakHeapMb.toFixed(1), ab: m.peakArrayBuffersMb.toFixed(1) }), "scavenges", gcLines.length - mc.length, "mark-compacts", mc.length)
        for (const l of (process.env.ALL ? gcLines : mc).slice(0, 40)) console.log("   ", l.trim().slice(0, 140))
      }
    })
    child.on("exit", () => resolve())
  })
}
await close(); await Effect.runPromise(Scope.close(scope, Exit.void))
