/**
 * Secrets never leak: for generated secrets, every kind of credential and
 * every failure mode (a wrong secret, an expired or garbage credential, a
 * refused TLS handshake, permission errors on a connection made with the
 * secret), the secret's text appears in no log line, no error's message,
 * `String`, `JSON.stringify` or `Cause.pretty`, and no connection event.
 */
import { assert, describe, layer } from "@effect/vitest"
import { createUser } from "@nats-io/nkeys"
import { Cause, Context, Effect, Layer, Logger, Redacted, Schema, Stream } from "effect"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Auth, NatsClient, NatsServer } from "../../src/index.ts"

/** A secret fixed for the servers' configs (the generated ones are the property's). */
const fixedPassword = Crypto.randomBytes(18).toString("base64url")
const fixedToken = Crypto.randomBytes(18).toString("base64url")
const nkeyUser = createUser()
const nkeySeed = new TextDecoder().decode(nkeyUser.getSeed())

const restricted = `permissions: { publish: ["allowed.>"], subscribe: ["allowed.>", "_INBOX.>"] }`

class Servers extends Context.Service<Servers, {
  readonly users: NatsServer.NatsServerShape
  readonly token: NatsServer.NatsServerShape
  readonly operator: NatsServer.NatsServerShape
  readonly mtls: NatsServer.NatsServerShape
  /** A client key the mutual-TLS server does not trust (another throwaway PKI). */
  readonly strangerKey: string
  readonly strangerCert: string
  /** Where the cases write their files. */
  readonly dir: string
}>()("test/Servers") {}

const ServersLive = Layer.effect(
  Servers,
  Effect.gen(function*() {
    const [users, token, operator, mtls, stranger] = yield* Effect.all([
      NatsServer.make({
        jetstream: false,
        config: `authorization { users: [
          { user: alice, password: "${fixedPassword}", ${restricted} },
          { nkey: ${nkeyUser.getPublicKey()}, ${restricted} }
        ] }`
      }),
      NatsServer.make({ jetstream: false, config: `authorization { token: "${fixedToken}" }` }),
      NatsServer.make({ operator: true }),
      NatsServer.make({ jetstream: false, tls: { verify: true } }),
      NatsServer.make({ jetstream: false, tls: {} })
    ], { concurrency: "unbounded" })
    const files = stranger.tls ?? (yield* Effect.die("no TLS"))
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-nats-secrets-"))),
      (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
    )
    return {
      users,
      token,
      operator,
      mtls,
      strangerKey: Fs.readFileSync(files.clientKeyFile, "utf8"),
      strangerCert: files.clientCertFile,
      dir
    }
  })
)

/** Every way a secret is used and fails (or a connection made with it meets a refusal). */
const Case = Schema.Literals([
  "password: wrong",
  "password: in the URL, wrong",
  "password: permission errors",
  "token: wrong",
  "token: right, used and closed",
  "nkey: unknown seed",
  "nkey: garbage seed",
  "nkey: seed file, unknown or garbage",
  "nkey: permission errors",
  "creds: expired",
  "creds: garbage",
  "creds: permission errors",
  "tls: refused client key"
])
type Case = typeof Case.Type

/** Generated secret text: printable ASCII (quotes, backslashes, spaces included), long enough never to occur by chance. */
const Secret = Schema.String.check(Schema.isMinLength(16), Schema.isMaxLength(40))

interface Attempt {
  /** The text that must appear nowhere. */
  readonly secret: string
  readonly options: NatsClient.NatsClientOptions
  /** The connection is expected to succeed: then denied operations are tried on it (unless `denied` is false). */
  readonly connects: boolean
  readonly denied?: boolean
}

const url = (server: NatsServer.NatsServerShape) => server.url

/** A seed line of a creds file (what a creds file keeps secret). */
const seedOf = (creds: string) => creds.match(/SU[A-Z0-9]{50,}/)?.[0] ?? creds

const attempt = (servers: Servers["Service"], kase: Case, generated: string) =>
  Effect.gen(function*() {
    const { mtls, operator, token, users } = servers
    switch (kase) {
      case "password: wrong":
        return {
          secret: generated,
          connects: false,
          options: { servers: url(users), auth: Auth.userPassword("alice", generated) }
        }
      case "password: in the URL, wrong": {
        const port = users.nodes[0]?.port ?? 0
        return {
          secret: encodeURIComponent(generated),
          connects: false,
          options: { servers: `nats://alice:${encodeURIComponent(generated)}@127.0.0.1:${port}` }
        }
      }
      case "password: permission errors":
        return {
          secret: fixedPassword,
          connects: true,
          options: { servers: url(users), auth: Auth.userPassword("alice", Redacted.make(fixedPassword)) }
        }
      case "token: wrong":
        return { secret: generated, connects: false, options: { servers: url(token), auth: Auth.token(generated) } }
      case "token: right, used and closed":
        // a token user has no permissions of its own (nats-server 2.9): the connection is used and closed
        return {
          secret: fixedToken,
          connects: true,
          denied: false,
          options: { servers: url(token), auth: Auth.token(fixedToken) }
        }
      case "nkey: unknown seed": {
        const seed = new TextDecoder().decode(createUser().getSeed())
        return { secret: seed, connects: false, options: { servers: url(users), auth: Auth.nkey(Redacted.make(seed)) } }
      }
      case "nkey: garbage seed":
        return {
          secret: generated,
          connects: false,
          options: { servers: url(users), auth: Auth.nkey(`SU${generated}`) }
        }
      case "nkey: seed file, unknown or garbage": {
        const seed = new TextDecoder().decode(createUser().getSeed())
        const path = Path.join(servers.dir, `${seed.slice(2, 12)}.nk`)
        const garbage = generated.length % 2 === 0
        Fs.writeFileSync(path, garbage ? `SU${generated}` : seed)
        return {
          secret: garbage ? generated : seed,
          connects: false,
          options: { servers: url(users), auth: Auth.nkeyFile(path) }
        }
      }
      case "nkey: permission errors":
        return { secret: nkeySeed, connects: true, options: { servers: url(users), auth: Auth.nkey(nkeySeed) } }
      case "creds: expired": {
        const user =
          yield* (operator.operator?.user({ expires: new Date(Date.now() - 60_000) }) ?? Effect.die("no operator"))
        const creds = Redacted.value(user.creds)
        return { secret: seedOf(creds), connects: false, options: { servers: url(operator), auth: Auth.creds(creds) } }
      }
      case "creds: garbage":
        return {
          secret: generated,
          connects: false,
          options: { servers: url(operator), auth: Auth.creds(`-----BEGIN USER NKEY SEED-----\n${generated}\n`) }
        }
      case "creds: permission errors": {
        const user = yield* (operator.operator?.user({
          publish: { allow: ["allowed.>"] },
          subscribe: { allow: ["allowed.>", "_INBOX.>"] }
        }) ?? Effect.die("no operator"))
        return {
          secret: seedOf(Redacted.value(user.creds)),
          connects: true,
          options: { servers: url(operator), auth: Auth.creds(user.creds) }
        }
      }
      case "tls: refused client key": {
        const body = servers.strangerKey.split("\n")[1] ?? servers.strangerKey
        return {
          secret: body,
          connects: false,
          options: {
            servers: url(mtls),
            tls: { caFile: mtls.tls?.caFile, certFile: servers.strangerCert, key: Redacted.make(servers.strangerKey) }
          }
        }
      }
    }
  }) satisfies Effect.Effect<Attempt, unknown, never>

/** What a failure shows: its message, String, JSON and the pretty cause. */
const renderings = (error: unknown): ReadonlyArray<string> => [
  error instanceof Error ? error.message : "",
  String(error),
  JSON.stringify(error) ?? "",
  Cause.pretty(Cause.fail(error))
]

/** Denied operations on a connection made with the secret: each fails or is reported, typed. */
const deniedOperations = (nats: NatsClient.NatsClientShape) =>
  Effect.gen(function*() {
    const events = yield* nats.eventsScoped
    const failures: Array<unknown> = []
    yield* nats.publish("denied.publish", "x")
    failures.push(yield* Effect.flip(nats.request("denied.request", "x", { timeout: "10 seconds" })))
    failures.push(yield* Effect.flip(Stream.runDrain(nats.subscribe("denied.subscribe"))))
    const seen = yield* events.pipe(
      Stream.takeUntil((event) => event._tag === "ServerError" && event.message.includes("denied.publish")),
      Stream.runCollect
    )
    for (const failure of failures) {
      assert.strictEqual((failure as { reason: { _tag: string } }).reason._tag, "PermissionViolation")
    }
    return { failures, events: seen }
  })

/** A connection used and closed: what its events say. */
const usedAndClosed = (nats: NatsClient.NatsClientShape) =>
  Effect.gen(function*() {
    const events = yield* nats.eventsScoped
    const sub = yield* nats.subscribeScoped("used.x")
    yield* nats.publish("used.x", "hello")
    yield* Stream.runHead(sub)
    yield* Effect.promise(() => nats.connection.reconnect())
    const seen = yield* events.pipe(Stream.takeUntil((event) => event._tag === "Reconnected"), Stream.runCollect)
    return seen.map((event) => JSON.stringify(event))
  })

describe("secrets never leak", () => {
  layer(ServersLive, { excludeTestServices: true })("every kind of credential, every failure", (it) => {
    it.effect.prop(
      "the secret appears in no log, error rendering or event",
      [Case, Secret],
      ([kase, generated]) =>
        Effect.gen(function*() {
          const servers = yield* Servers
          const { connects, denied, options, secret } = yield* attempt(servers, kase, generated)
          const logs: Array<string> = []
          const capture = Logger.make<unknown, void>(({ cause, logLevel, message }) => {
            logs.push(`${logLevel} ${Array.isArray(message) ? message.map(String).join(" ") : String(message)}`)
            if (cause.reasons.length > 0) logs.push(Cause.pretty(cause))
          })
          const texts = yield* Effect.gen(function*() {
            const made = yield* Effect.exit(
              NatsClient.make({ ...options, logEvents: true, connectTimeout: "10 seconds" })
            )
            if (made._tag === "Failure") {
              assert.isFalse(connects, `${kase}: ${Cause.pretty(made.cause)}`)
              return [
                Cause.pretty(made.cause),
                ...made.cause.reasons.flatMap((r) => r._tag === "Fail" ? renderings(r.error) : [])
              ]
            }
            assert.isTrue(connects, `${kase}: connected`)
            if (denied === false) return yield* usedAndClosed(made.value)
            const { events, failures } = yield* deniedOperations(made.value)
            return [...failures.flatMap(renderings), ...events.map((event) => JSON.stringify(event))]
          }).pipe(Effect.scoped, Effect.provide(Logger.layer([capture])))
          const escaped = JSON.stringify(secret).slice(1, -1)
          for (const text of [...texts, ...logs]) {
            assert.notInclude(text, secret, kase)
            assert.notInclude(text, escaped, kase)
          }
          assert.isAbove(texts.length, 0)
        }),
      { arbitrary: { runs: 60 } }
    )
  })
})
