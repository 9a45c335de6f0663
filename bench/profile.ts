/**
 * Runs one side of one scenario a few times, for profiling:
 *
 *   npx node bench/profile.ts <scenario> <raw|effect> [runs] [--quick] [--cpu-prof=file.cpuprofile]
 *
 * Same embedded server and clients as `npm run bench`; prints each run's measurement and the CPU
 * time this process (the clients) used for it. With
 * `--cpu-prof=` a first run warms up (and fills streams), then the CPU profile covers only the
 * measured runs (open it in Chrome DevTools or speedscope).
 */
import { Effect, Exit, Scope } from "effect"
import * as Fs from "node:fs"
import { Session } from "node:inspector/promises"
import { NatsServer } from "../src/index.ts"
import type { Context, Scenario } from "./harness.ts"
import { coreScenarios, openClients } from "./scenarios/core.ts"
import { jetstreamScenarios, openJetStream } from "./scenarios/jetstream.ts"
import { kvScenarios } from "./scenarios/kv.ts"
import { memoryScenarios } from "./scenarios/memory.ts"
import { objectStoreScenarios } from "./scenarios/objectStore.ts"
import { rpcScenarios } from "./scenarios/rpc.ts"
import { tracingScenarios } from "./scenarios/tracing.ts"

const [name = "", side = "effect", runsText = "3"] = process.argv.slice(2)
const quick = process.argv.includes("--quick")
const profileTo = process.argv.find((a) => a.startsWith("--cpu-prof="))?.slice("--cpu-prof=".length)
if (side !== "raw" && side !== "effect") throw new Error("side: raw or effect")

const scope = Effect.runSync(Scope.make())
const server = await Effect.runPromise(Scope.provide(scope)(NatsServer.make({ config: "max_payload: 8388608" })))
const ctx: Context = { url: server.url, quick }
const clients = await openClients(server.url)
try {
  const all: ReadonlyArray<Scenario> = [
    ...coreScenarios(clients),
    ...jetstreamScenarios(clients, await openJetStream(clients)),
    ...kvScenarios(clients),
    ...objectStoreScenarios(clients),
    ...tracingScenarios(clients),
    ...rpcScenarios(clients),
    ...memoryScenarios(clients)
  ]
  const scenario = all.find((s) => s.name === name)
  if (scenario === undefined) throw new Error(`no scenario ${name}: ${all.map((s) => s.name).join(", ")}`)
  const session = profileTo === undefined ? undefined : new Session()
  if (session !== undefined) {
    console.log("warm-up", side, JSON.stringify(await scenario[side](ctx)))
    session.connect()
    await session.post("Profiler.enable")
    await session.post("Profiler.setSamplingInterval", { interval: 100 })
    await session.post("Profiler.start")
  }
  for (let i = 0; i < Number(runsText); i++) {
    // this process' CPU time (the clients'), steadier than a rate on a busy machine
    const cpu = process.cpuUsage()
    const result = await scenario[side](ctx)
    const used = process.cpuUsage(cpu)
    console.log(side, JSON.stringify(result), `cpu=${((used.user + used.system) / 1000).toFixed(0)}ms`)
  }
  if (session !== undefined && profileTo !== undefined) {
    const { profile } = await session.post("Profiler.stop")
    Fs.writeFileSync(profileTo, JSON.stringify(profile))
    session.disconnect()
    console.log(`profile written to ${profileTo}`)
  }
} finally {
  await clients.close()
  await Effect.runPromise(Scope.close(scope, Exit.void))
}
