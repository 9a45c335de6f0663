/**
 * TLS against real nats-servers with throwaway PKIs: a custom CA, refusals
 * (unknown CA, name mismatch, missing or untrusted client certificate, a
 * client that expects no TLS) typed and prompt, mutual TLS, certificate
 * users, restarts and TLS routes.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Duration, Effect, Redacted, Schedule, Stream } from "effect"
import * as Fs from "node:fs"
import { NatsClient, NatsServer } from "../../src/index.ts"

const quiet = { logEvents: false } as const

/** The failure of a first connect, and how long it took. */
const refused = (options: NatsClient.NatsClientOptions) =>
  Effect.timed(Effect.flip(NatsClient.make({ ...quiet, connectTimeout: "20 seconds", ...options })))

const assertPromptTls = ([elapsed, error]: readonly [Duration.Duration, NatsClient.NatsClientShape | unknown]) => {
  const e = error as {
    readonly reason: { readonly _tag: string }
    readonly isRetryable: boolean
    readonly message: string
  }
  assert.strictEqual(e.reason._tag, "TlsError", e.message)
  assert.isFalse(e.isRetryable)
  // typed at once: no retry loop, no wait for the connect timeout
  assert.isBelow(Duration.toMillis(elapsed), 5_000)
}

describe("TLS", () => {
  layer(NatsServer.layer({ jetstream: false, tls: {} }), { excludeTestServices: true })("server certificate", (it) => {
    it.effect("a client trusting the CA connects over tls:// and works; the server sees TLS", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        assert.isTrue(server.url.startsWith("tls://"))
        const tls = server.tls
        assert.isDefined(tls)
        const nats = yield* NatsClient.make({ ...quiet, servers: server.url, tls: { caFile: tls?.caFile } })
        const sub = yield* nats.subscribeScoped("secure.x")
        yield* nats.publish("secure.x", "hello")
        const [msg] = yield* sub.pipe(Stream.take(1), Stream.runCollect)
        assert.strictEqual(msg?.string(), "hello")
        const connz = (yield* server.monitor("/connz")) as { connections: ReadonlyArray<{ tls_version?: string }> }
        assert.isTrue(connz.connections.every((c) => c.tls_version !== undefined && c.tls_version !== ""))
      }))

    it.effect("the CA as contents, and TLS 1.3 as the lowest version, connect too", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        const ca = Fs.readFileSync(server.tls?.caFile ?? "", "utf8")
        const nats = yield* NatsClient.make({ ...quiet, servers: server.url, tls: { ca, minVersion: "TLSv1.3" } })
        yield* nats.flush
      }))

    it.effect("an unknown CA, a name the certificate does not cover, a client without the CA: TlsError at once", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        const other = yield* NatsServer.make({ jetstream: false, tls: {} })
        assertPromptTls(yield* refused({ servers: server.url, tls: { caFile: other.tls?.caFile } }))
        assertPromptTls(
          yield* refused({ servers: server.url, tls: { caFile: server.tls?.caFile, serverName: "orders.example" } })
        )
        // a client with no TLS settings on a nats:// URL: the server requires TLS, the system CAs do not trust it
        assertPromptTls(yield* refused({ servers: server.url.replace("tls://", "nats://") }))
      }))

    it.effect("a TLS connection keeps working across a server restart", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.make({ jetstream: false, tls: {} })
        const nats = yield* NatsClient.make({
          ...quiet,
          servers: server.url,
          tls: { caFile: server.tls?.caFile }
        })
        const events = yield* nats.eventsScoped
        yield* server.restart()
        yield* events.pipe(Stream.filter((e) => e._tag === "Reconnected"), Stream.take(1), Stream.runDrain)
        const reply = yield* nats.serve("secure.echo", (msg) => Effect.succeed(msg.data)).pipe(
          Effect.andThen(nats.request("secure.echo", "after restart"))
        )
        assert.strictEqual(reply.string(), "after restart")
      }))

    it.effect("unusable certificates and keys are InvalidArgument before anything is dialled, without the key", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        const tls = server.tls
        const key = Fs.readFileSync(tls?.clientKeyFile ?? "", "utf8")
        const cases: ReadonlyArray<readonly [string, NatsClient.NatsClientOptions["tls"]]> = [
          ["missing CA file", { caFile: "/nonexistent/ca.pem" }],
          ["garbage CA", { ca: "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n" }],
          ["cert without key", { caFile: tls?.caFile, certFile: tls?.clientCertFile }],
          ["garbage key", {
            caFile: tls?.caFile,
            certFile: tls?.clientCertFile,
            key: Redacted.make("secret-key-text")
          }],
          ["another key", { caFile: tls?.caFile, certFile: tls?.certFile, key: Redacted.make(key) }],
          ["both file and contents", { caFile: tls?.caFile, ca: "x" }],
          ["version", { caFile: tls?.caFile, minVersion: "SSLv3" as never }]
        ]
        for (const [label, options] of cases) {
          const [, error] = yield* refused({ servers: server.url, tls: options })
          assert.strictEqual(error.reason._tag, "InvalidArgument", label)
          assert.include(error.message, "tls", label)
          assert.notInclude(error.message, "secret-key-text", label)
          assert.notInclude(error.message, "PRIVATE KEY", label)
        }
      }))
  })

  layer(NatsServer.layer({ jetstream: false, tls: { verify: true } }), { excludeTestServices: true })(
    "mutual TLS",
    (it) => {
      it.effect("a client certificate signed by the CA is accepted; none, or one of another CA, is TlsError", () =>
        Effect.gen(function*() {
          const server = yield* NatsServer.NatsServer
          const tls = server.tls
          const nats = yield* NatsClient.make({
            ...quiet,
            servers: server.url,
            tls: { caFile: tls?.caFile, certFile: tls?.clientCertFile, keyFile: tls?.clientKeyFile }
          })
          yield* nats.flush
          assertPromptTls(yield* refused({ servers: server.url, tls: { caFile: tls?.caFile } }))
          const stranger = yield* NatsServer.make({ jetstream: false, tls: {} })
          assertPromptTls(
            yield* refused({
              servers: server.url,
              tls: {
                caFile: tls?.caFile,
                certFile: stranger.tls?.clientCertFile,
                keyFile: stranger.tls?.clientKeyFile
              }
            })
          )
        }))
    }
  )

  layer(
    NatsServer.layer({
      jetstream: false,
      tls: { verifyAndMap: true, clientName: "alice" },
      config: "authorization { users: [ { user: \"CN=alice\", permissions: { publish: \"alice.>\" } } ] }"
    }),
    { excludeTestServices: true }
  )("certificate users (verify_and_map)", (it) => {
    it.effect("the certificate is the user: its permissions apply", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        const tls = server.tls
        assert.strictEqual(tls?.clientSubject, "CN=alice")
        const nats = yield* NatsClient.make({
          ...quiet,
          servers: server.url,
          tls: { caFile: tls?.caFile, certFile: tls?.clientCertFile, keyFile: tls?.clientKeyFile }
        })
        yield* nats.flush
        const denied = yield* Effect.flip(nats.request("bob.rpc", "x", { timeout: "10 seconds" }))
        assert.strictEqual(denied.reason._tag, "PermissionViolation")
      }))
  })

  layer(NatsServer.layer({ cluster: 3, tls: { routes: true } }), { excludeTestServices: true })(
    "a 3-node cluster with TLS routes",
    (it) => {
      it.effect("routes are up over TLS and a message crosses them", () =>
        Effect.gen(function*() {
          const server = yield* NatsServer.NatsServer
          const ca = { caFile: server.tls?.caFile }
          const a = yield* NatsClient.make({ ...quiet, servers: server.urls[0] ?? "", tls: ca })
          const b = yield* NatsClient.make({ ...quiet, servers: server.urls[2] ?? "", tls: ca })
          for (const node of [0, 1, 2]) {
            const routez = (yield* server.monitor("/routez", node)) as { num_routes: number }
            assert.strictEqual(routez.num_routes, 2)
            const varz = (yield* server.monitor("/varz", node)) as {
              cluster: { tls_required?: boolean; tls_verify?: boolean }
            }
            assert.isTrue(varz.cluster.tls_required === true && varz.cluster.tls_verify === true)
          }
          yield* b.serve("across.echo", (msg) => Effect.succeed(msg.data))
          // the responder's interest crosses the routes: no responders until it has
          const reply = yield* a.request("across.echo", "routed", { timeout: "2 seconds" }).pipe(
            Effect.retry({
              schedule: Schedule.spaced("50 millis").pipe(Schedule.upTo({ times: 100 })),
              while: (e) => e.reason._tag === "NoResponders"
            })
          )
          assert.strictEqual(reply.string(), "routed")
        }))
    }
  )
})
