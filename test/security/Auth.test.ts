/**
 * Decentralized JWT auth (operator mode), permissions and rotating
 * credentials, on real nats-servers.
 */
import { assert, describe, layer } from "@effect/vitest"
import { createUser } from "@nats-io/nkeys"
import { ConfigProvider, Duration, Effect, Layer, Redacted, Ref, Schedule, Stream } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Auth, JetStream, JetStreamManager, NatsClient, NatsServer } from "../../src/index.ts"

const quiet = { logEvents: false } as const

const assertRefused = ([elapsed, error]: readonly [Duration.Duration, { reason: { _tag: string } } & Error]) => {
  assert.strictEqual(error.reason._tag, "AuthorizationViolation", error.message)
  assert.isFalse((error as unknown as { isRetryable: boolean }).isRetryable)
  assert.isBelow(Duration.toMillis(elapsed), 5_000)
}

describe("JWT (operator mode)", () => {
  layer(
    NatsServer.layer({
      operator: { accounts: [{ name: "APP" }, { name: "SMALL", limits: { payload: 100, jetstream: false } }] }
    }),
    { excludeTestServices: true }
  )("an operator with accounts", (it) => {
    it.effect("creds connect: core messaging and JetStream work for the account's user", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        const alice = yield* server.operator?.user({ name: "alice" }) ?? Effect.die("no operator")
        const env = Layer.mergeAll(JetStream.JetStream.layer, JetStreamManager.JetStreamManager.layer).pipe(
          Layer.provideMerge(
            NatsClient.NatsClient.layer({ ...quiet, servers: server.url, auth: Auth.creds(alice.creds) })
          )
        )
        const ack = yield* Effect.gen(function*() {
          const nats = yield* NatsClient.NatsClient
          const sub = yield* nats.subscribeScoped("jwt.x")
          yield* nats.publish("jwt.x", "hello")
          const [msg] = yield* sub.pipe(Stream.take(1), Stream.runCollect)
          assert.strictEqual(msg?.string(), "hello")
          yield* (yield* JetStreamManager.JetStreamManager).createOrUpdateStream({ name: "JWT", subjects: ["jwt.>"] })
          return yield* (yield* JetStream.JetStream).publish("jwt.y", "stored")
        }).pipe(Effect.scoped, Effect.provide(env))
        assert.strictEqual(ack.stream, "JWT")
      }))

    it.effect("a creds file (Auth.credsFile, and NATS_CREDS_FILE through Config) connects", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        const user = yield* server.operator?.user() ?? Effect.die("no operator")
        const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-nats-creds-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
        const file = Path.join(dir, "user.creds")
        Fs.writeFileSync(file, Redacted.value(user.creds))
        const direct = yield* NatsClient.make({ ...quiet, servers: server.url, auth: Auth.credsFile(file) })
        yield* direct.flush
        yield* NatsClient.NatsClient.use((nats) => nats.flush).pipe(
          Effect.provide(
            NatsClient.NatsClient.layerConfig().pipe(
              Layer.provide(
                ConfigProvider.layer(ConfigProvider.fromEnv({ env: { NATS_URL: server.url, NATS_CREDS_FILE: file } }))
              )
            )
          )
        )
        const missing = yield* Effect.flip(
          NatsClient.make({ ...quiet, servers: server.url, auth: Auth.credsFile(Path.join(dir, "nope.creds")) })
        )
        assert.strictEqual(missing.reason._tag, "InvalidArgument")
      }))

    it.effect("an expired user, a user of an unknown account, a revoked user: AuthorizationViolation at once", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        const operator = server.operator
        if (operator === undefined) return yield* Effect.die("no operator")
        const connect = (creds: Redacted.Redacted<string>) =>
          Effect.timed(Effect.flip(NatsClient.make({ ...quiet, servers: server.url, auth: Auth.creds(creds) })))
        const expired = yield* operator.user({ expires: new Date(Date.now() - 60_000) })
        assertRefused(yield* connect(expired.creds))
        const stranger = yield* operator.user({ account: "NOT-PRELOADED" })
        assertRefused(yield* connect(stranger.creds))
        const bob = yield* operator.user({ name: "bob" })
        const connected = yield* NatsClient.make({ ...quiet, servers: server.url, auth: Auth.creds(bob.creds) })
        yield* connected.flush
        yield* operator.revoke("APP", bob.publicKey)
        assertRefused(yield* connect(bob.creds))
      }))

    it.effect("an account's payload limit is the connection's max_payload: a larger message is refused, typed", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        const user = yield* server.operator?.user({ account: "SMALL" }) ?? Effect.die("no operator")
        const nats = yield* NatsClient.make({ ...quiet, servers: server.url, auth: Auth.creds(user.creds) })
        assert.strictEqual(nats.maxPayload(), 100)
        const error = yield* Effect.flip(nats.publish("small.x", "x".repeat(200)))
        assert.strictEqual(error.reason._tag, "MaxPayloadExceeded")
      }))
  })
})

describe("account and user limits", () => {
  layer(
    NatsServer.layer({
      operator: {
        accounts: [{ name: "ONE", limits: { connections: 1 } }, {
          name: "TINY",
          limits: { jetstream: { memory: 1_000, disk: 1_000 } }
        }]
      }
    }),
    { excludeTestServices: true }
  )("an operator with limited accounts", (it) => {
    it.effect("past the account's connection limit a connect fails with LimitExceeded, in the server's words", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        const user = yield* server.operator?.user({ account: "ONE" }) ?? Effect.die("no operator")
        const options = { ...quiet, servers: server.url, auth: Auth.creds(user.creds) }
        const first = yield* NatsClient.make(options)
        yield* first.flush
        // nats.js may see the server close the socket before it reads the -ERR: that is
        // ConnectionRefused, retryable, and the connect schedule tries again
        const error = yield* Effect.flip(
          NatsClient.make({
            ...options,
            connectSchedule: Schedule.spaced("10 millis").pipe(Schedule.upTo({ times: 50 }))
          })
        )
        assert.strictEqual(error.reason._tag, "LimitExceeded", error.message)
        assert.isTrue(error.reason._tag === "LimitExceeded" && error.reason.limit === "connections")
        assert.match(error.message, /maximum account active connections exceeded/)
        assert.isFalse(error.isRetryable)
      }))

    it.effect("past the user's subscription limit the subscription fails with LimitExceeded; the others work", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        const user = yield* server.operator?.user({ subscriptions: 2 }) ?? Effect.die("no operator")
        const nats = yield* NatsClient.make({ ...quiet, servers: server.url, auth: Auth.creds(user.creds) })
        const a = yield* nats.subscribeScoped("lim.a")
        const b = yield* nats.subscribeScoped("lim.b")
        const error = yield* nats.subscribe("lim.c").pipe(Stream.runDrain, Effect.flip)
        assert.strictEqual(error.reason._tag, "LimitExceeded", error.message)
        assert.match(error.message, /maximum subscriptions exceeded/)
        // subscribeScoped and serve return once the server took the subscription: they fail themselves
        const scoped = yield* Effect.flip(Effect.scoped(nats.subscribeScoped("lim.d")))
        assert.strictEqual(scoped.reason._tag, "LimitExceeded", scoped.message)
        const served = yield* Effect.flip(Effect.scoped(nats.serve("lim.e", () => Effect.void)))
        assert.strictEqual(served.reason._tag, "LimitExceeded", served.message)
        // a request needs its inbox subscription: refused too, typed, not a timeout
        const refused = yield* Effect.flip(nats.request("lim.other", "ping", { timeout: "20 seconds" }))
        assert.strictEqual(refused.reason._tag, "LimitExceeded", refused.message)
        yield* nats.publish("lim.a", "1")
        yield* nats.publish("lim.b", "2")
        const [x] = yield* a.pipe(Stream.take(1), Stream.runCollect)
        const [y] = yield* b.pipe(Stream.take(1), Stream.runCollect)
        assert.deepStrictEqual([x?.string(), y?.string()], ["1", "2"])
      }))

    it.effect("past the account's JetStream storage a stream is refused: JetStreamApi with the server's code", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        const user = yield* server.operator?.user({ account: "TINY" }) ?? Effect.die("no operator")
        const nats = yield* NatsClient.make({ ...quiet, servers: server.url, auth: Auth.creds(user.creds) })
        const jsm = yield* JetStreamManager.make().pipe(Effect.provideService(NatsClient.NatsClient, nats))
        const error = yield* Effect.flip(
          jsm.createOrUpdateStream({ name: "BIG", subjects: ["big.>"], storage: "memory", maxBytes: 100_000 })
        )
        assert.strictEqual(error.reason._tag, "JetStreamApi", error.message)
        assert.strictEqual(error.reason._tag === "JetStreamApi" ? error.reason.errCode : 0, 10028)
        assert.match(error.message, /insufficient memory resources/)
        yield* jsm.createOrUpdateStream({ name: "FITS", subjects: ["fits.>"], storage: "memory", maxBytes: 500 })
      }))
  })
})

const seedUser = createUser()
const seedText = new TextDecoder().decode(seedUser.getSeed())

describe("NKey seed files", () => {
  layer(
    NatsServer.layer({ jetstream: false, config: `authorization { users: [ { nkey: ${seedUser.getPublicKey()} } ] }` }),
    { excludeTestServices: true }
  )("a server with an NKey user", (it) => {
    it.effect("a seed file, plain or decorated, connects (Auth.nkeyFile and NATS_NKEY_FILE); bad files are typed", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-nats-seed-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
        const file = (name: string, text: string) => {
          const path = Path.join(dir, name)
          Fs.writeFileSync(path, text)
          return path
        }
        const plain = file("plain.nk", `${seedText}\n`)
        const decorated = file(
          "decorated.nk",
          `-----BEGIN USER NKEY SEED-----\n${seedText}\n------END USER NKEY SEED------\n`
        )
        for (const path of [plain, decorated]) {
          const nats = yield* NatsClient.make({ ...quiet, servers: server.url, auth: Auth.nkeyFile(path) })
          yield* nats.flush
        }
        yield* NatsClient.NatsClient.use((nats) => nats.flush).pipe(
          Effect.provide(
            NatsClient.NatsClient.layerConfig().pipe(
              Layer.provide(
                ConfigProvider.layer(ConfigProvider.fromEnv({ env: { NATS_URL: server.url, NATS_NKEY_FILE: plain } }))
              )
            )
          )
        )
        const garbage = file("garbage.nk", "SUNOTASEED-but-secret-text\n")
        for (const path of [garbage, Path.join(dir, "missing.nk")]) {
          const error = yield* Effect.flip(
            NatsClient.make({ ...quiet, servers: server.url, auth: Auth.nkeyFile(path) })
          )
          assert.strictEqual(error.reason._tag, "InvalidArgument", error.message)
          assert.include(error.message, path)
          assert.notInclude(error.message, "secret-text")
        }
        const unknown = file("unknown.nk", new TextDecoder().decode(createUser().getSeed()))
        const refused = yield* Effect.flip(
          NatsClient.make({ ...quiet, servers: server.url, auth: Auth.nkeyFile(unknown) })
        )
        assert.strictEqual(refused.reason._tag, "AuthorizationViolation")
      }))
  })
})

describe("permissions", () => {
  layer(
    NatsServer.layer({
      config: "authorization { users: [ { user: carol, password: \"c4rol-pw\", permissions: { " +
        "publish: { allow: [\"allowed.>\", \"_INBOX.>\", \"$JS.API.INFO\", \"$JS.API.STREAM.INFO.>\"] }, " +
        "subscribe: { allow: [\"allowed.>\", \"_INBOX.>\"] } } } ] }"
    }),
    { excludeTestServices: true }
  )("a user allowed only allowed.>", (it) => {
    const carol = (server: NatsServer.NatsServerShape) =>
      NatsClient.make({ servers: server.url, auth: Auth.userPassword("carol", Redacted.make("c4rol-pw")) })

    it.effect("a subscription to a denied subject fails its Stream with PermissionViolation", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        const nats = yield* carol(server)
        const error = yield* Effect.flip(
          nats.subscribe("denied.>").pipe(Stream.runDrain, Effect.timeout("10 seconds"))
        )
        assert.strictEqual(error._tag === "NatsError" ? error.reason._tag : error._tag, "PermissionViolation")
      }))

    it.effect("a publish to a denied subject is reported as a ServerError event naming it", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        const nats = yield* carol(server)
        const events = yield* nats.eventsScoped
        yield* nats.publish("denied.x", "no")
        const [event] = yield* events.pipe(
          Stream.filter((e) => e._tag === "ServerError"),
          Stream.take(1),
          Stream.runCollect,
          Effect.timeout("10 seconds")
        )
        assert.include(event?._tag === "ServerError" ? event.message : "", "denied.x")
      }))

    it.effect("requests and JetStream API calls to denied subjects fail at once with PermissionViolation", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        const nats = yield* carol(server)
        const [requestIn, request] = yield* Effect.timed(
          Effect.flip(nats.request("denied.rpc", "x", { timeout: "20 seconds" }))
        )
        assert.strictEqual(request.reason._tag, "PermissionViolation")
        assert.isBelow(Duration.toMillis(requestIn), 5_000)
        const jsm = yield* JetStreamManager.make({ timeout: "20 seconds" }).pipe(
          Effect.provideService(NatsClient.NatsClient, nats)
        )
        const [createIn, create] = yield* Effect.timed(
          Effect.flip(jsm.createOrUpdateStream({ name: "FORBIDDEN", subjects: ["allowed.forbidden.>"] }))
        )
        assert.strictEqual(create.reason._tag, "PermissionViolation", create.message)
        assert.isBelow(Duration.toMillis(createIn), 5_000)
      }))
  })
})

describe("rotating credentials", () => {
  layer(
    NatsServer.layer({ jetstream: false, config: "authorization { user: dave, password: \"first-pw\" }" }),
    { excludeTestServices: true }
  )("a password changed on the server and in the secret store", (it) => {
    it.effect("the client reconnects with the new password; the old one is refused", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        const store = yield* Ref.make("first-pw")
        const nats = yield* NatsClient.make({
          ...quiet,
          servers: server.url,
          // the secret store: read on the first connect and again whenever the connection drops
          auth: Effect.map(Ref.get(store), (password) => Auth.userPassword("dave", Redacted.make(password))),
          reconnectSchedule: Schedule.spaced("100 millis").pipe(Schedule.upTo({ times: 50 }))
        })
        const events = yield* nats.eventsScoped
        yield* nats.serve("rotate.echo", (msg) => Effect.succeed(msg.data))
        yield* Ref.set(store, "second-pw")
        // the server reloads with the new password and closes the connections of the old one
        yield* server.reload("authorization { user: dave, password: \"second-pw\" }")
        yield* events.pipe(Stream.filter((e) => e._tag === "Reconnected"), Stream.take(1), Stream.runDrain)
        assert.strictEqual((yield* nats.request("rotate.echo", "again")).string(), "again")
        const old = yield* Effect.flip(
          NatsClient.make({ ...quiet, servers: server.url, auth: Auth.userPassword("dave", Redacted.make("first-pw")) })
        )
        assert.strictEqual(old.reason._tag, "AuthorizationViolation")
      }), 60_000)
  })
})
