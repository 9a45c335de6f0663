/**
 * `npm run bench [-- --quick] [-- --only name,name] [-- --reps n]`: every scenario, raw
 * nats.js against effect-nats, alternately, on one embedded nats-server.
 * Writes bench/results/latest.json and BENCHMARKS.md.
 */
import { Effect, Exit, Scope } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { NatsServer } from "../src/index.ts"
import type { Context, Result, Scenario } from "./harness.ts"
import { fmt, runScenario } from "./harness.ts"
import { coreScenarios, openClients } from "./scenarios/core.ts"
import { jetstreamScenarios, openJetStream, withOneByOne } from "./scenarios/jetstream.ts"
import { kvScenarios } from "./scenarios/kv.ts"
import { memoryScenarios } from "./scenarios/memory.ts"
import { objectStoreScenarios } from "./scenarios/objectStore.ts"
import { rpcScenarios } from "./scenarios/rpc.ts"
import { tracingScenarios } from "./scenarios/tracing.ts"

const args = process.argv.slice(2)
const quick = args.includes("--quick")
const onlyIndex = args.indexOf("--only")
const only = onlyIndex === -1 ? undefined : new Set((args[onlyIndex + 1] ?? "").split(","))
const repsIndex = args.indexOf("--reps")
const reps = repsIndex === -1 ? undefined : Number(args[repsIndex + 1])
if (reps !== undefined && !(Number.isInteger(reps) && reps >= 1)) throw new Error("--reps: a positive integer")

const root = Path.resolve(import.meta.dirname, "..")
const log = (line: string) => console.log(line)

const scope = Effect.runSync(Scope.make())
const server = await Effect.runPromise(
  Scope.provide(scope)(NatsServer.make({ config: "max_payload: 8388608" }))
)
const ctx: Context = { url: server.url, quick, reps }
const clients = await openClients(server.url)

const jsClients = await openJetStream(clients)

const scenarios: ReadonlyArray<Scenario> = [
  ...coreScenarios(clients),
  ...jetstreamScenarios(clients, jsClients),
  ...kvScenarios(clients),
  ...objectStoreScenarios(clients),
  ...tracingScenarios(clients),
  ...rpcScenarios(clients),
  ...memoryScenarios(clients)
]
  .filter((s) => only === undefined || only.has(s.name))

const started = Date.now()
log(`effect-nats benchmarks (${quick ? "quick" : "full"}) on nats-server ${server.version}, node ${process.version}`)
const measured: Array<Result> = []
try {
  for (const scenario of scenarios) measured.push(...await runScenario(scenario, ctx, log))
} finally {
  await clients.close()
  await Effect.runPromise(Scope.close(scope, Exit.void))
}

const results = withOneByOne(measured)

const meta = {
  date: new Date().toISOString(),
  node: process.version,
  server: server.version,
  cpus: Os.cpus().length,
  cpu: Os.cpus()[0]?.model ?? "unknown",
  mode: quick ? "quick" : "full",
  ...(reps === undefined ? {} : { reps }),
  seconds: Math.round((Date.now() - started) / 1000)
}

const summary = results.map((r) => ({
  scenario: r.scenario,
  metric: r.metric,
  raw: r.raw,
  effect: r.effect,
  ratio: r.ratio,
  target: r.target,
  met: r.met,
  raw_range: r.rawRange,
  effect_range: r.effectRange,
  pair_ratios: r.pairRatios,
  ...(r.limit === undefined ? {} : { limit: r.limit, effect_of_limit: r.ofLimit }),
  ...r.extra
}))

Fs.mkdirSync(Path.join(root, "bench/results"), { recursive: true })
Fs.writeFileSync(
  Path.join(root, "bench/results", quick ? "quick.json" : "latest.json"),
  JSON.stringify({ meta, results: summary }, null, 2) + "\n"
)

const table = [
  "| scenario | metric | raw (median, min–max) | effect-nats (median, min–max) | ratio | target | met | physical limit |",
  "|---|---|---|---|---|---|---|---|",
  ...results.map((r) =>
    `| \`${r.scenario}\` | ${r.metric} | ${fmt(r.raw)} (${fmt(r.rawRange[0])}–${fmt(r.rawRange[1])}) | ${
      fmt(r.effect)
    } (${fmt(r.effectRange[0])}–${fmt(r.effectRange[1])}) | ${r.ratio.toFixed(2)} | ${r.target} | ${
      r.met ? "yes" : "**no**"
    } | ${r.limit === undefined ? "-" : `${fmt(r.limit)} (effect at ${((r.ofLimit ?? 0) * 100).toFixed(0)}%)`} |`
  )
].join("\n")

const fmtExtra = (v: unknown) => typeof v === "number" ? fmt(v) : String(v)
const extras = results.filter((r) => r.extra !== undefined && Object.keys(r.extra).length > 0).map((r) =>
  `- \`${r.scenario}\` ${r.metric}: ${
    Object.entries(r.extra ?? {}).map(([k, v]) => `${k} = ${fmtExtra(v)}`).join("; ")
  }`
).join("\n")

log("\n" + table + (extras === "" ? "" : "\n\n" + extras))
if (!quick) {
  const file = Path.join(root, "BENCHMARKS.md")
  const previous = Fs.existsSync(file) ? Fs.readFileSync(file, "utf8") : ""
  const notes = previous.includes("<!-- notes -->")
    ? previous.slice(previous.indexOf("<!-- notes -->"))
    : "<!-- notes -->\n"
  Fs.writeFileSync(
    file,
    `# Benchmarks

Command: \`npm run bench\` (\`npm run bench -- --quick\` for a short run). Date: ${meta.date}.
Node ${meta.node}, nats-server ${meta.server}, ${meta.cpus} CPUs (${meta.cpu}); client and server share the machine.
Each scenario: a warm-up of each side, then raw and effect-nats alternately (A B, B A, ...); medians with min–max.
The ratio is effect/raw (higher is better for msgs/s, lower for latency). Raw results: \`bench/results/latest.json\`.

${table}
${extras === "" ? "" : "\n" + extras + "\n"}
${notes}`
  )
}
log(`done in ${meta.seconds} s`)
