/**
 * Wrong and garbage security inputs, as a new or hostile user gives them:
 * each is a clear typed error, promptly, with no secret in it; nothing
 * crashes, hangs or silently weakens (a tls:// URL never connects in the
 * clear).
 */
import { assert, describe, layer } from "@effect/vitest"
import { createUser } from "@nats-io/nkeys"
import { Duration, Effect, Logger, Redacted, Stream } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Auth, NatsClient, NatsServer } from "../../src/index.ts"

const quiet = { logEvents: false } as const
const SECRET = "SECRET-MARKER-7f3a"

const seedUser = createUser()
const seed = new TextDecoder().decode(seedUser.getSeed())

/** A temporary directory, removed with the scope. */
const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-nats-hostile-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

/** The failure of a connect, how long it took, and every rendering of it. */
const refused = (options: NatsClient.NatsClientOptions) =>
  Effect.gen(function*() {
    const [elapsed, error] = yield* Effect.timed(
      Effect.flip(NatsClient.make({ ...quiet, connectTimeout: "3 seconds", ...options }))
    )
    const texts = [error.message, String(error), JSON.stringify(error)]
    return { elapsed: Duration.toMillis(elapsed), error, texts }
  })

const assertTyped = (
  label: string,
  outcome: {
    readonly elapsed: number
    readonly error: { readonly reason: { readonly _tag: string } }
    readonly texts: ReadonlyArray<string>
  },
  tag: string,
  secrets: ReadonlyArray<string> = [SECRET]
) => {
  assert.strictEqual(outcome.error.reason._tag, tag, `${label}: ${outcome.texts[0]}`)
  assert.isBelow(outcome.elapsed, 3_500, label)
  for (const text of outcome.texts) for (const secret of secrets) assert.notInclude(text, secret, label)
  for (const text of outcome.texts) assert.isBelow(text.length, 2_000, `${label}: a bounded message`)
}

describe("hostile security input", () => {
  layer(
    NatsServer.layer({
      jetstream: false,
      config: `authorization { users: [ { user: alice, password: "right-pw" }, { nkey: ${seedUser.getPublicKey()} } ] }`
    }),
    { excludeTestServices: true }
  )("a plain server with users", (it) => {
    it.effect("garbage servers, credentials and TLS options are InvalidArgument before dialling, without secrets", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        const url = server.url
        const port = server.nodes[0]?.port ?? 0
        const dir = yield* tempDir
        const fifo = Path.join(dir, "fifo")
        ChildProcess.execFileSync("mkfifo", [fifo])
        const pemKey = `-----BEGIN PRIVATE KEY-----\n${SECRET}\n-----END PRIVATE KEY-----\n`
        const cases: ReadonlyArray<readonly [string, NatsClient.NatsClientOptions]> = [
          ["servers a number", { servers: 123 as never }],
          ["servers null", { servers: null as never }],
          ["servers an object", { servers: {} as never }],
          ["malformed percent-encoding", { servers: `nats://alice:${SECRET}%zz@127.0.0.1:${port}` }],
          ["a line break in the host", { servers: `nats://127.0.0.1\n:${port}` }],
          ["a path", { servers: `nats://127.0.0.1:${port}/orders` }],
          ["a query", { servers: `nats://127.0.0.1:${port}?x=1` }],
          ["a host too long", { servers: `nats://${"a".repeat(300)}:4222` }],
          ["auth a string", { servers: url, auth: SECRET as never }],
          ["auth an object", { servers: url, auth: {} as never }],
          ["auth of an unknown kind", { servers: url, auth: { _tag: "Bogus" } as never }],
          ["auth a Promise", { servers: url, auth: Promise.resolve(Auth.token("x")) as never }],
          ["a token not Redacted", { servers: url, auth: { _tag: "Token", token: SECRET } as never }],
          ["a password not Redacted", {
            servers: url,
            auth: { _tag: "UserPassword", user: "a", password: SECRET } as never
          }],
          ["a user name a number", { servers: url, auth: Auth.userPassword(7 as never, SECRET) }],
          ["a password a number", {
            servers: url,
            auth: { _tag: "UserPassword", user: "a", password: Redacted.make(7) } as never
          }],
          ["a wiped token", { servers: url, auth: Auth.token(wiped()) }],
          ["a seed where a path belongs", { servers: url, auth: Auth.nkeyFile(seed) }],
          ["creds where a path belongs", {
            servers: url,
            auth: Auth.credsFile(`-----BEGIN NATS USER JWT-----\n${SECRET}\n`)
          }],
          ["a FIFO as the seed file", { servers: url, auth: Auth.nkeyFile(fifo) }],
          ["a device as the seed file", { servers: url, auth: Auth.nkeyFile("/dev/zero") }],
          ["a directory as the creds file", { servers: url, auth: Auth.credsFile(dir) }],
          ["a 10 kB password", { servers: url, auth: Auth.userPassword("alice", SECRET.repeat(700)) }],
          ["a 1 MB token", { servers: url, auth: Auth.token(SECRET.repeat(70_000)) }],
          ["a 100 kB name", { servers: url, name: "n".repeat(100_000) }],
          ["tls null", { servers: url, tls: null as never }],
          ["tls a string", { servers: url, tls: "yes" as never }],
          ["tls.serverName a number", { servers: url, tls: { serverName: 123 as never } }],
          ["tls.minVersion huge garbage", { servers: url, tls: { minVersion: "x".repeat(100_000) as never } }],
          ["tls.key not Redacted", { servers: url, tls: { cert: "x", key: pemKey as never } }],
          ["PEM text where a key path belongs", { servers: url, tls: { certFile: "x", keyFile: pemKey } }],
          ["a FIFO as the CA file", { servers: url, tls: { caFile: fifo } }],
          ["a CA bundle with trailing garbage", {
            servers: url,
            tls: { ca: `${caText()}\n-----BEGIN CERTIFICATE-----\n${SECRET}\n-----END CERTIFICATE-----\n` }
          }]
        ]
        for (const [label, options] of cases) {
          assertTyped(label, yield* refused(options), "InvalidArgument", [SECRET, seed])
        }
      }))

    it.effect("an auth Effect that hangs, is slow, fails, dies or gives garbage: typed, within connectTimeout", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        const connect = (auth: NatsClient.NatsClientOptions["auth"], connectTimeout: Duration.Input = "3 seconds") =>
          refused({ servers: server.url, auth, connectTimeout })
        assertTyped("never", yield* connect(Effect.never, "1 second"), "Timeout")
        assertTyped(
          "slower than connectTimeout",
          yield* connect(Effect.as(Effect.sleep("5 seconds"), Auth.token("t")), "1 second"),
          "Timeout"
        )
        assertTyped("fails with a string", yield* connect(Effect.fail("vault down") as never), "Unknown")
        assertTyped("dies", yield* connect(Effect.die(new Error("boom"))), "Unknown")
        assertTyped(
          "throws",
          yield* connect(Effect.sync(() => {
            throw new Error("boom")
          })),
          "Unknown"
        )
        assertTyped("gives undefined", yield* connect(Effect.succeed(undefined) as never), "InvalidArgument")
        assertTyped("gives garbage", yield* connect(Effect.succeed({ _tag: "Nope" }) as never), "InvalidArgument")
        assertTyped(
          "gives a wrong password",
          yield* connect(Effect.succeed(Auth.userPassword("alice", "no"))),
          "AuthorizationViolation"
        )
      }))

    it.effect("a tls:// URL or TLS options against a server without TLS: TlsError, never a plaintext connection", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        const port = server.nodes[0]?.port ?? 0
        const auth = Auth.userPassword("alice", "right-pw")
        assertTyped("tls:// URL", yield* refused({ servers: `tls://127.0.0.1:${port}`, auth }), "TlsError")
        assertTyped(
          "tls option",
          yield* refused({ servers: server.url, auth, tls: { minVersion: "TLSv1.3" } }),
          "TlsError"
        )
        const plain = yield* NatsClient.make({ ...quiet, servers: server.url, auth })
        yield* plain.flush
      }))

    it.effect("a seed file unreadable or garbage at a reconnect: a warning, the last contents used, still connected", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        const dir = yield* tempDir
        const file = Path.join(dir, "user.nk")
        Fs.writeFileSync(file, seed)
        const warnings: Array<string> = []
        const capture = Logger.make<unknown, void>(({ message }) => {
          warnings.push(Array.isArray(message) ? message.join(" ") : String(message))
        })
        const nats = yield* NatsClient.make({ ...quiet, servers: server.url, auth: Auth.nkeyFile(file) }).pipe(
          Effect.provide(Logger.layer([capture]))
        )
        const events = yield* nats.eventsScoped
        for (const rotation of [() => Fs.rmSync(file), () => Fs.writeFileSync(file, `SU${SECRET}`)]) {
          rotation()
          yield* Effect.promise(() => nats.connection.reconnect())
          yield* events.pipe(Stream.takeUntil((event) => event._tag === "Reconnected"), Stream.runDrain)
          yield* nats.flush
        }
        assert.isTrue(warnings.some((w) => w.includes("cannot read the NKey seed file")), JSON.stringify(warnings))
        assert.isTrue(warnings.some((w) => w.includes("is not a valid seed")), JSON.stringify(warnings))
        for (const w of warnings) assert.notInclude(w, SECRET)
      }))
  })
})

describe("hostile operator-mode input", () => {
  layer(NatsServer.layer({ operator: true }), { excludeTestServices: true })("an operator", (it) => {
    it.effect("garbage user options and revocations are SetupFailed, never a user with more rights", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        const operator = server.operator ?? (yield* Effect.die("no operator"))
        const cases: ReadonlyArray<readonly [string, NatsServer.UserOptions]> = [
          ["allow a string (would spread to letters)", { publish: { allow: "orders.>" as never } }],
          ["allow an invalid subject", { publish: { allow: ["orders..x"] } }],
          ["deny a number", { subscribe: { deny: [1 as never] } }],
          ["publish null", { publish: null as never }],
          ["expires an invalid Date", { expires: new Date("garbage") }],
          ["expires a string", { expires: "tomorrow" as never }],
          ["subscriptions NaN", { subscriptions: Number.NaN }],
          ["payload a string", { payload: "10" as never }],
          ["account a number", { account: 1 as never }]
        ]
        for (const [label, options] of cases) {
          const error = yield* Effect.flip(operator.user(options))
          assert.strictEqual(error.reason._tag, "SetupFailed", label)
        }
        const revoked = yield* Effect.flip(operator.revoke("APP", SECRET))
        assert.strictEqual(revoked.reason._tag, "SetupFailed")
        assert.notInclude(revoked.message, SECRET)
        const accounts = yield* Effect.flip(
          Effect.scoped(NatsServer.make({ operator: { accounts: [{ name: "A" }, { name: "A" }] } }))
        )
        assert.strictEqual(accounts.reason._tag, "SetupFailed")
      }))

    it.effect("creds with CRLF line ends connect", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        const user = yield* (server.operator?.user() ?? Effect.die("no operator"))
        const crlf = Redacted.value(user.creds).replace(/\n/g, "\r\n")
        const nats = yield* NatsClient.make({ ...quiet, servers: server.url, auth: Auth.creds(crlf) })
        yield* nats.flush
      }))
  })
})

function wiped(): Redacted.Redacted<string> {
  const r = Redacted.make(SECRET)
  Redacted.wipeUnsafe(r)
  return r
}

/** A valid certificate (a throwaway one made for the test by openssl). */
function caText(): string {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-nats-ca-"))
  try {
    ChildProcess.execFileSync("openssl", [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=test",
      "-keyout",
      Path.join(dir, "k.pem"),
      "-out",
      Path.join(dir, "c.pem")
    ], { stdio: "ignore" })
    return Fs.readFileSync(Path.join(dir, "c.pem"), "utf8")
  } finally {
    Fs.rmSync(dir, { recursive: true, force: true })
  }
}
