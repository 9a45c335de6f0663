/**
 * `npm run chaos [-- --only a,c]`: fault scenarios against throwaway
 * nats-servers (not part of the test run). Each scenario starts its own
 * servers, injects one fault while messages flow (publishers with msgIds and
 * a retry schedule), lets the run settle, reads back what the stream stored
 * and prints one row: what was sent, acked, stored, delivered, lost,
 * processed twice, and how long until the first success after the fault.
 * Writes bench/results/chaos.json.
 */
import { Effect, References } from "effect"
import type { Scope } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { consumerLeaderKill, streamLeaderKill } from "./chaos/cluster.ts"
import type { Row } from "./chaos/common.ts"
import { Tally } from "./chaos/common.ts"
import { processorShutdown, slowProcessor, slowSubscriber } from "./chaos/processing.ts"
import { gracefulRestart, processorKill } from "./chaos/serverKill.ts"
import { stalledNetwork } from "./chaos/stalledNetwork.ts"

interface ChaosScenario {
  readonly key: string
  readonly name: string
  readonly description: string
  readonly run: (tally: Tally) => Effect.Effect<void, unknown, Scope.Scope>
}

const scenarios: ReadonlyArray<ChaosScenario> = [
  {
    key: "a",
    name: "a-kill-mid-processor",
    description: "SIGKILL of a single server while a Processor works (file storage), started again after 1 s",
    run: processorKill
  },
  {
    key: "b",
    name: "b-restart-mid-publish",
    description: "graceful restart (SIGTERM, start) of a single server mid-publishAll",
    run: gracefulRestart
  },
  {
    key: "c",
    name: "c-stream-leader-kill",
    description: "3-node cluster, R3 stream: its leader SIGKILLed mid-publishAll (client on another node)",
    run: streamLeaderKill
  },
  {
    key: "d",
    name: "d-consumer-leader-kill",
    description: "3-node cluster, R3 stream, durable pull consumer: its leader SIGKILLed mid-consume",
    run: consumerLeaderKill
  },
  {
    key: "e",
    name: "e-processor-shutdown",
    description: "a busy Processor's scope closed (grace 2 s), a second one started on the same consumer",
    run: processorShutdown
  },
  {
    key: "f1",
    name: "f1-slow-subscriber",
    description: "core subscription, bufferSize 100, dropOldest, under a publisher at full speed",
    run: slowSubscriber
  },
  {
    key: "f2",
    name: "f2-slow-processor",
    description: "Processor, handlers of 1.5 s under a 1 s ack wait (working keeps them alive)",
    run: slowProcessor
  },
  {
    key: "g",
    name: "g-stalled-network",
    description: "the fault proxy stalls the connection for 4 s mid-publishAll (a Processor consuming)",
    run: stalledNetwork
  }
]

const args = process.argv.slice(2)
const onlyIndex = args.indexOf("--only")
const only = onlyIndex === -1 ? undefined : new Set((args[onlyIndex + 1] ?? "").split(","))
const root = Path.resolve(import.meta.dirname, "..")
const log = (line: string) => console.log(line)

/** A scenario, bounded by 60 s; its own steps are bounded tighter (see `phase`). */
const runOne = async (scenario: ChaosScenario): Promise<Row> => {
  const tally = new Tally()
  const started = Date.now()
  log(`-- ${scenario.name}: ${scenario.description}`)
  await Effect.runPromise(
    scenario.run(tally).pipe(
      Effect.scoped,
      Effect.timeout("60 seconds"),
      Effect.catchCause((cause) => Effect.sync(() => tally.errors.push(String(cause).split("\n")[0] ?? "failed"))),
      // the library's warnings (retries, interrupted handlers) are part of the story; info is noise here
      Effect.provideService(References.MinimumLogLevel, "Warn")
    )
  )
  const row = tally.row(scenario.name, scenario.description, Math.round((Date.now() - started) / 100) / 10)
  log(`   ${JSON.stringify(row)}`)
  return row
}

const cell = (x: number | undefined) => x === undefined ? "-" : String(x)

const notes = (row: Row) =>
  Object.entries(row.extra)
    .filter(([, v]) => v !== undefined && !(typeof v === "object" && Object.keys(v as object).length === 0))
    .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : String(v)}`)
    .join(" ")

const started = Date.now()
log(`effect-nats chaos run, node ${process.version}, ${Os.cpus().length} CPUs`)
const rows: Array<Row> = []
for (const scenario of scenarios.filter((s) => only === undefined || only.has(s.key))) {
  rows.push(await runOne(scenario))
}
const seconds = Math.round((Date.now() - started) / 1000)

const header = [
  "scenario",
  "sent",
  "acked",
  "stored",
  "stored twice",
  "delivered",
  "lost",
  "processed twice",
  "resume ms",
  "s"
]
const table = [
  `| ${header.join(" | ")} |`,
  `|${header.map(() => "---").join("|")}|`,
  ...rows.map((r) =>
    `| ${
      [
        r.scenario,
        cell(r.sent),
        cell(r.acked),
        cell(r.stored),
        cell(r.storedTwice),
        cell(r.delivered),
        cell(r.lost),
        cell(r.processedTwice),
        cell(r.resumeMs),
        cell(r.seconds)
      ].join(" | ")
    } |`
  )
].join("\n")

log(`
${table}

Notes per scenario:
${rows.map((r) => `- ${r.scenario}: ${notes(r)}${r.error === undefined ? "" : ` ERROR: ${r.error}`}`).join("\n")}

Legend:
- sent: messages handed to the publisher (each with a msgId; publishAll retries with a Schedule).
- acked: distinct messages JetStream acknowledged to the publisher.
- stored: distinct messages the stream holds once the run settles (read back by an ordered consumer);
  stored twice: extra copies of the same message.
- delivered: distinct messages handed to the consumer / Processor handler (f1: received by the subscription).
- lost: acked but never stored, plus stored but never processed and acked by the consumer once the run
  settles (f1: sent but neither received nor counted as dropped by the library's SlowConsumer events).
- processed twice: deliveries of a message after the consumer side had acked it.
- resume ms: from the fault to the first success after it (an ack for publishers, an acked message for
  consumers; b, c, g: from the fault's start, counting only acks after the fault fully happened).
- s: the scenario's wall time, servers included.
done in ${seconds} s`)

Fs.mkdirSync(Path.join(root, "bench/results"), { recursive: true })
Fs.writeFileSync(
  Path.join(root, "bench/results/chaos.json"),
  JSON.stringify({ meta: { date: new Date().toISOString(), node: process.version, seconds }, rows }, null, 2) + "\n"
)
process.exit(0)
