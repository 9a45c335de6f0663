import { assert, describe, it, layer } from "@effect/vitest"
import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import type { NatsConnection } from "@nats-io/nats-core"
import { connect, type NodeConnectionOptions } from "@nats-io/transport-node"
import { Effect, Exit, Tracer } from "effect"
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { type NodePorts, pickFreePorts, PortPicker } from "../../src/internal/serverPorts.ts"
import * as NatsServer from "../../src/layers/NatsServer.ts"

const connection = (options: NodeConnectionOptions) =>
  Effect.acquireRelease(
    Effect.promise(() => connect({ reconnect: false, ...options })),
    (nc) => Effect.promise(() => nc.close())
  )

const roundTrip = (pub: NatsConnection, sub: NatsConnection, subject: string, data: string) =>
  Effect.promise(async () => {
    const subscription = sub.subscribe(subject, { max: 1 })
    await sub.flush()
    // Subscription interest propagates across routes asynchronously: publish
    // until the subscriber sees a message.
    const received = (async () => {
      for await (const msg of subscription) return msg.string()
      return undefined
    })()
    let got: string | undefined
    const timer = setInterval(() => pub.publish(subject, data), 50)
    pub.publish(subject, data)
    try {
      got = await received
    } finally {
      clearInterval(timer)
    }
    return got
  })

/** Alive and not a zombie (an orphan's zombie may linger when PID 1 does not reap). */
const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  try {
    return !/^\d+ \(.*\) Z/.test(Fs.readFileSync(`/proc/${pid}/stat`, "utf8"))
  } catch {
    return true
  }
}

/** Listen on a loopback port (0: any free one) until the scope closes, so nats-server cannot bind it. */
const holdPort = (port = 0) =>
  Effect.acquireRelease(
    Effect.callback<Net.Server>((resume) => {
      // Drop every connection (probes of the port): close() waits for open ones.
      const server = Net.createServer((socket) => socket.destroy())
      server.once("error", (e) => resume(Effect.die(e)))
      server.listen(port, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) => Effect.callback<void>((resume) => void server.close(() => resume(Effect.void)))
  ).pipe(Effect.map((server) => (server.address() as Net.AddressInfo).port))

/**
 * A port picker whose first pick is `first(fresh)` (fresh free ports with some
 * replaced by held ones); later picks are fresh. `calls` counts the picks.
 */
const pickerWithFirst = (first: (fresh: ReadonlyArray<NodePorts>) => ReadonlyArray<NodePorts>) => {
  const picker = {
    calls: 0,
    pick: async (nodes: number, clustered: boolean) => {
      const fresh = await pickFreePorts(nodes, clustered)
      return picker.calls++ === 0 ? first(fresh) : fresh
    }
  }
  return picker
}

/** A tracer recording, in order, when each span starts and ends. */
const recordingTracer = () => {
  const events: Array<{ readonly phase: "start" | "end"; readonly span: Tracer.NativeSpan }> = []
  const tracer = Tracer.make({
    span(options) {
      const span = new Tracer.NativeSpan(options)
      events.push({ phase: "start", span })
      const end = span.end.bind(span)
      span.end = (endTime, exit) => {
        events.push({ phase: "end", span })
        end(endTime, exit)
      }
      return span
    }
  })
  return { tracer, events }
}

const moduleUrl = new URL("../../src/layers/NatsServer.ts", import.meta.url).href

describe("NatsServer", () => {
  // The layer is built under @effect/vitest's TestClock: readiness polling must
  // still use real time.
  layer(NatsServer.layer())("single node", (it) => {
    it.effect("exposes url, version and serves pub/sub and JetStream", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        assert.match(server.url, /^nats:\/\/127\.0\.0\.1:\d+$/)
        assert.deepStrictEqual(server.urls, [server.url])
        const node = server.nodes[0]
        assert.isDefined(node)
        assert.strictEqual(node?.url, server.url)
        assert.isUndefined(node?.clusterPort)

        const nc = yield* connection({ servers: server.url })
        const got = yield* roundTrip(nc, nc, "hello", "world")
        assert.strictEqual(got, "world")

        const jsm = yield* Effect.promise(() => jetstreamManager(nc))
        const info = yield* Effect.promise(() => jsm.streams.add({ name: "S1", subjects: ["s1.>"] }))
        assert.strictEqual(info.config.name, "S1")

        const varz = yield* server.varz()
        assert.strictEqual(varz.version, server.version)
        assert.match(server.version, /^\d+\.\d+\.\d+/)
        assert.strictEqual(varz.port, node?.port)
        assert.strictEqual(varz.server_name, node?.name)
      }))

    it.effect("restart keeps the port and the JetStream store", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        const pidBefore = yield* server.pid()
        {
          const nc = yield* connection({ servers: server.url })
          const jsm = yield* Effect.promise(() => jetstreamManager(nc))
          yield* Effect.promise(() => jsm.streams.add({ name: "KEEP", subjects: ["keep.>"] }))
          yield* Effect.promise(() => jetstream(nc).publish("keep.a", "persisted"))
          yield* Effect.promise(() => nc.close())
        }
        yield* server.restart()
        const pidAfter = yield* server.pid()
        assert.isDefined(pidAfter)
        assert.notStrictEqual(pidAfter, pidBefore)
        assert.strictEqual((yield* server.varz()).port, server.nodes[0]?.port)

        const nc = yield* connection({ servers: server.url })
        const jsm = yield* Effect.promise(() => jetstreamManager(nc))
        const info = yield* Effect.promise(() => jsm.streams.info("KEEP"))
        assert.strictEqual(info.state.messages, 1)
        const msg = yield* Effect.promise(() => jsm.streams.getMessage("KEEP", { seq: 1 }))
        assert.strictEqual(msg?.string(), "persisted")
      }))

    it.effect("kill then start", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        const pid = yield* server.pid()
        assert.isDefined(pid)
        yield* server.kill()
        assert.isFalse(yield* server.isRunning())
        assert.isFalse(isAlive(pid ?? -1))
        const refused = yield* Effect.exit(
          Effect.tryPromise(() => connect({ servers: server.url, reconnect: false }))
        )
        assert.isTrue(Exit.isFailure(refused))

        yield* server.start()
        assert.isTrue(yield* server.isRunning())
        const nc = yield* connection({ servers: server.url })
        assert.strictEqual(yield* roundTrip(nc, nc, "after.kill", "ok"), "ok")
      }))

    it.effect("stop then start; invalid node index fails with ControlFailed", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        yield* server.stop()
        assert.isFalse(yield* server.isRunning())
        assert.isUndefined(yield* server.pid())
        yield* server.start()
        const nc = yield* connection({ servers: server.url })
        assert.strictEqual(yield* roundTrip(nc, nc, "after.stop", "ok"), "ok")

        const error = yield* Effect.flip(server.stop(7))
        assert.strictEqual(error.reason._tag, "ControlFailed")
      }))
  })

  it.live("config option: max_payload and authorization", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.make({
        jetstream: false,
        config: `max_payload: 1024\nauthorization { user: alice, password: s3cret }`
      })
      const varz = yield* server.varz()
      assert.strictEqual(varz.max_payload, 1024)

      const anonymous = yield* Effect.exit(
        Effect.tryPromise(() => connect({ servers: server.url, reconnect: false }))
      )
      assert.isTrue(Exit.isFailure(anonymous))
      const nc = yield* connection({ servers: server.url, user: "alice", pass: "s3cret" })
      assert.strictEqual(nc.info?.max_payload, 1024)
      assert.strictEqual(yield* roundTrip(nc, nc, "auth", "ok"), "ok")
    }))

  it.live("missing binary fails with BinaryNotFound mentioning apt-get", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(NatsServer.make({ binary: "/nonexistent/nats-server" }))
      assert.strictEqual(error._tag, "NatsServerError")
      assert.strictEqual(error.reason._tag, "BinaryNotFound")
      assert.include(error.message, "apt-get")
      assert.include(error.message, "NATS_SERVER_BIN")
      assert.isFalse(error.isRetryable)
    }))

  it.live("a bad config fails with StartFailed carrying the server output", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(NatsServer.make({ jetstream: false, config: "this is { not valid" }))
      assert.strictEqual(error.reason._tag, "StartFailed")
      assert.isTrue(error.message.length > 0)
      if (error.reason._tag === "StartFailed") assert.notStrictEqual(error.reason.output, "")
    }))

  it.live("start keeps the node's ports: a taken one fails with StartFailed naming it", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.make({ jetstream: false })
      const port = server.nodes[0]?.port ?? 0
      yield* server.stop()
      const error = yield* Effect.scoped(
        Effect.gen(function*() {
          yield* holdPort(port)
          return yield* Effect.flip(server.start())
        })
      )
      assert.strictEqual(error.reason._tag, "StartFailed")
      if (error.reason._tag === "StartFailed") {
        assert.deepStrictEqual(error.reason.portInUse, { kind: "client", port })
        assert.include(error.reason.output, "address already in use")
      }
      assert.include(error.message, `its client port ${port} is already in use`)
      assert.isFalse(yield* server.isRunning())

      // The port is free again: the node starts on it.
      yield* server.start()
      assert.strictEqual((yield* server.varz()).port, port)
    }))

  for (const kind of ["client", "monitor"] as const) {
    it.live(`a picked ${kind} port taken before the server binds it: started again on fresh ports`, () =>
      Effect.gen(function*() {
        const held = yield* holdPort()
        const picker = pickerWithFirst(([fresh]) => [
          kind === "client"
            ? { port: held, monitorPort: fresh?.monitorPort ?? 0 }
            : { port: fresh?.port ?? 0, monitorPort: held }
        ])
        const server = yield* NatsServer.make({ jetstream: false }).pipe(Effect.provideService(PortPicker, picker.pick))
        assert.strictEqual(picker.calls, 2)
        const node = server.nodes[0]
        assert.notStrictEqual(kind === "client" ? node?.port : node?.monitorPort, held)
        assert.strictEqual((yield* server.varz()).port, node?.port)
        const nc = yield* connection({ servers: server.url })
        assert.strictEqual(yield* roundTrip(nc, nc, "fresh", "ports"), "ports")
      }))
  }

  it.live(
    "a cluster port taken on one node: the whole cluster starts again on fresh ports",
    () =>
      Effect.gen(function*() {
        const held = yield* holdPort()
        const picker = pickerWithFirst((fresh) => fresh.map((p, i) => i === 2 ? { ...p, clusterPort: held } : p))
        const server = yield* NatsServer.make({ cluster: 3 }).pipe(Effect.provideService(PortPicker, picker.pick))
        assert.strictEqual(picker.calls, 2)
        assert.isFalse(server.nodes.some((n) => n.clusterPort === held))
        for (let i = 0; i < 3; i++) {
          assert.isTrue(yield* server.isRunning(i))
          assert.strictEqual((yield* server.varz(i)).server_name, server.nodes[i]?.name)
        }
        const nc0 = yield* connection({ servers: server.urls[0] ?? "" })
        const nc2 = yield* connection({ servers: server.urls[2] ?? "" })
        assert.strictEqual(yield* roundTrip(nc0, nc2, "across.fresh", "routed"), "routed")
      }),
    60_000
  )

  it.live("ports taken on every attempt: StartFailed after a bounded number of attempts", () =>
    Effect.gen(function*() {
      const held = yield* holdPort()
      let calls = 0
      const pick = async () => {
        calls++
        const [fresh] = await pickFreePorts(1, false)
        return [{ port: held, monitorPort: fresh?.monitorPort ?? 0 }]
      }
      const error = yield* Effect.flip(
        NatsServer.make({ jetstream: false }).pipe(Effect.provideService(PortPicker, pick))
      )
      assert.strictEqual(calls, 5)
      assert.strictEqual(error.reason._tag, "StartFailed")
      if (error.reason._tag === "StartFailed") {
        assert.deepStrictEqual(error.reason.portInUse, { kind: "client", port: held })
      }
      assert.include(error.message, `its client port ${held} is already in use`)
      assert.include(error.message, "5 attempts")
    }))

  it.live("ports option: a single node on the given ports", () =>
    Effect.gen(function*() {
      // Two ports that are free now (another process could take them before
      // the server binds them: that is what fixed ports are).
      const [port, monitorPort] = yield* Effect.scoped(Effect.all([holdPort(), holdPort()]))
      const picker = pickerWithFirst((fresh) => fresh)
      const server = yield* NatsServer.make({ jetstream: false, ports: { port, monitorPort } }).pipe(
        Effect.provideService(PortPicker, picker.pick)
      )
      assert.strictEqual(picker.calls, 0)
      assert.strictEqual(server.url, `nats://127.0.0.1:${port}`)
      assert.strictEqual(server.nodes[0]?.monitorPort, monitorPort)
      assert.strictEqual((yield* server.varz()).port, port)
      const nc = yield* connection({ servers: server.url })
      assert.strictEqual(yield* roundTrip(nc, nc, "fixed", "ports"), "ports")
    }))

  it.live("ports option: a taken fixed port fails at once, not retried on other ports", () =>
    Effect.gen(function*() {
      const held = yield* holdPort()
      const picker = pickerWithFirst((fresh) => fresh)
      const error = yield* Effect.flip(
        NatsServer.make({ jetstream: false, ports: { port: held } }).pipe(
          Effect.provideService(PortPicker, picker.pick)
        )
      )
      // One pick, for the monitoring port; no second attempt.
      assert.strictEqual(picker.calls, 1)
      assert.strictEqual(error.reason._tag, "StartFailed")
      if (error.reason._tag === "StartFailed") {
        assert.deepStrictEqual(error.reason.portInUse, { kind: "client", port: held })
      }
      assert.include(error.message, `its client port ${held} is already in use`)
      assert.notInclude(error.message, "attempts")
    }))

  it.live("ports option: invalid values and a cluster fail with SetupFailed", () =>
    Effect.gen(function*() {
      for (
        const options of [
          { cluster: 3, ports: { port: 4222 } },
          { ports: { port: 0 } },
          { ports: { monitorPort: 70_000 } },
          { ports: { port: 4222, monitorPort: 4222 } }
        ] as const
      ) {
        const error = yield* Effect.flip(NatsServer.make(options))
        assert.strictEqual(error.reason._tag, "SetupFailed", JSON.stringify(options))
        assert.include(error.message, "ports option")
      }
    }))

  it.live(
    "3-node cluster: every node runs before readiness is awaited, and the nodes are awaited concurrently",
    () =>
      Effect.gen(function*() {
        const { events, tracer } = recordingTracer()
        const server = yield* NatsServer.make({ cluster: 3 }).pipe(Effect.withTracer(tracer))

        // The events of the successful (last) start attempt.
        const lastAttempt = events.findLastIndex((e) =>
          e.phase === "start" && e.span.name === "NatsServer.startAttempt"
        )
        const attempt = events.slice(lastAttempt)
        const at = (name: string, phase: "start" | "end") =>
          attempt.flatMap((e, i) => e.span.name === name && e.phase === phase ? [i] : [])
        const spawned = at("NatsServer.spawnNode", "end")
        const readyStarts = at("NatsServer.awaitReady", "start")
        const readyEnds = at("NatsServer.awaitReady", "end")
        assert.strictEqual(spawned.length, 3)
        assert.strictEqual(readyEnds.length, 3)
        // All three processes exist before any node's readiness is awaited ...
        assert.isBelow(Math.max(...spawned), Math.min(...readyStarts))
        // ... and every node's wait begins before any node is ready.
        assert.isBelow(Math.max(...readyStarts), Math.min(...readyEnds))

        const spawnSpans = attempt.filter((e) => e.phase === "end" && e.span.name === "NatsServer.spawnNode")
        for (let i = 0; i < 3; i++) {
          const span = spawnSpans.find((e) => e.span.attributes.get("node") === i)?.span
          assert.strictEqual(span?.attributes.get("pid"), yield* server.pid(i))
        }
      }),
    40_000
  )

  it.live("releasing the scope kills the process and removes temp dirs", () =>
    Effect.gen(function*() {
      const { dirs, pid } = yield* Effect.scoped(
        Effect.gen(function*() {
          const server = yield* NatsServer.make()
          const pid = yield* server.pid()
          const dirs = server.nodes.map((n) => n.dir)
          assert.isDefined(pid)
          assert.isTrue(isAlive(pid ?? -1))
          for (const dir of dirs) assert.isTrue(Fs.existsSync(dir))
          return { dirs, pid: pid ?? -1 }
        })
      )
      assert.isFalse(isAlive(pid))
      for (const dir of dirs) assert.isFalse(Fs.existsSync(dir))
    }))

  it.live("debug pipes server output to logs; logs() keeps the stderr tail", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.make({ jetstream: false, debug: true })
      const lines = yield* server.logs()
      assert.isTrue(lines.length > 0 && lines.length <= 50)
      assert.isTrue(lines.some((line) => line.includes("Server is ready")))
    }))

  it.live("the process.on(exit) safeguard kills servers when Node exits without finalizers", () =>
    Effect.sync(() => {
      const script = [
        `import { Effect } from "effect"`,
        `import * as NatsServer from ${JSON.stringify(moduleUrl)}`,
        `Effect.runFork(Effect.gen(function*() {`,
        `  const server = yield* NatsServer.make()`,
        `  console.log(JSON.stringify({ pid: yield* server.pid(), dirs: server.nodes.map((n) => n.dir) }))`,
        `  process.exit(0)`,
        `}).pipe(Effect.scoped))`
      ].join("\n")
      const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
        cwd: Path.resolve(import.meta.dirname, "../.."),
        encoding: "utf8",
        timeout: 20_000
      })
      const { dirs, pid } = JSON.parse(out.trim().split("\n").pop() ?? "{}") as {
        pid: number
        dirs: Array<string>
      }
      // The finalizer never ran, so the temp dirs remain; only the process is killed.
      for (const dir of dirs) Fs.rmSync(dir, { recursive: true, force: true })
      assert.isNumber(pid)
      assert.isFalse(isAlive(pid))
    }))

  it.live("3-node cluster: routes between nodes and R3 streams", () =>
    Effect.gen(function*() {
      const server = yield* NatsServer.make({ cluster: 3 })
      assert.strictEqual(server.urls.length, 3)
      assert.strictEqual(new Set(server.urls).size, 3)
      assert.strictEqual(new Set(server.nodes.map((n) => n.clusterPort)).size, 3)
      for (let i = 0; i < 3; i++) {
        assert.strictEqual((yield* server.varz(i)).server_name, server.nodes[i]?.name)
      }

      const nc0 = yield* connection({ servers: server.urls[0] ?? "" })
      const nc2 = yield* connection({ servers: server.urls[2] ?? "" })
      assert.strictEqual(yield* roundTrip(nc0, nc2, "across", "routed"), "routed")

      const jsm = yield* Effect.promise(() => jetstreamManager(nc0))
      const info = yield* Effect.promise(() => jsm.streams.add({ name: "R3", subjects: ["r3.>"], num_replicas: 3 }))
      assert.strictEqual(info.config.num_replicas, 3)
      // The stream's interest reaches node 2 over the routes a moment later:
      // nats.js retries a publish that found no responders.
      const ack = yield* Effect.promise(() => jetstream(nc2).publish("r3.x", "replicated", { retries: 20 }))
      assert.strictEqual(ack.stream, "R3")
      assert.strictEqual(ack.seq, 1)

      // A follower restart keeps the cluster usable.
      yield* server.restart(1)
      const ack2 = yield* Effect.promise(() => jetstream(nc0).publish("r3.y", "again", { retries: 20 }))
      assert.strictEqual(ack2.seq, 2)
    }), 40_000)
})
