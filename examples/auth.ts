/**
 * Authentication (the article's `ConnectWithPassword` and `ConnectWithNKey`,
 * plus decentralized JWT creds): each is a `NatsClient` layer whose secret is
 * `Redacted` and whose files are read on every connect, so rotated files are
 * picked up. From configuration the same choices are `NATS_USER` with
 * `NATS_PASSWORD`, `NATS_NKEY_FILE` (or `NATS_NKEY_SEED`), `NATS_CREDS_FILE`
 * (or `NATS_CREDS`): see `NatsClient.layerConfig`.
 *
 * It starts two embedded servers: one with a password user and an NKey user,
 * one in operator mode (JWT) that mints the creds.
 *
 * Run: npm run example -- auth
 */
import { createUser } from "@nats-io/nkeys"
import type { Layer } from "effect"
import { Effect, Redacted, Schedule } from "effect"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Auth, NatsClient, NatsServer } from "../src/index.ts"

/** The article's policy for these connections: up to 10 reconnects. */
const reconnectSchedule = Schedule.spaced("2 seconds").pipe(Schedule.upTo({ times: 10 }))

/** `ConnectWithPassword`: user and password (the password `Redacted`). */
export const connectWithPassword = (servers: string, user: string, password: Redacted.Redacted<string>) =>
  NatsClient.NatsClient.layer({ servers, auth: Auth.userPassword(user, password), reconnectSchedule })

/** `ConnectWithNKey`: an NKey seed file. The seed never leaves the client; the server knows the public key. */
export const connectWithNKey = (servers: string, seedPath: string) =>
  NatsClient.NatsClient.layer({ servers, auth: Auth.nkeyFile(seedPath), reconnectSchedule })

/** Decentralized auth: a creds file (user JWT and NKey seed) issued by an account. */
export const connectWithCreds = (servers: string, credsPath: string) =>
  NatsClient.NatsClient.layer({ servers, auth: Auth.credsFile(credsPath), reconnectSchedule })

/** Connects with a layer, proves the connection with a request to its own responder, and releases it. */
const roundTrip = (method: string, layer: Layer.Layer<NatsClient.NatsClient, unknown>) =>
  Effect.gen(function*() {
    const nats = yield* NatsClient.NatsClient
    yield* nats.serve("auth.echo", (msg) => Effect.succeed(`hello, ${msg.string()}`))
    const reply = yield* nats.request("auth.echo", method, { timeout: "2 seconds" })
    yield* Effect.log(`${method}: connected to ${nats.connection.getServer()}, ${reply.string()}`)
    return reply.string()
  }).pipe(Effect.scoped, Effect.provide(layer))

/** Writes a file in a temporary directory removed with the scope. */
const tempFile = Effect.fnUntraced(function*(name: string, contents: string) {
  const dir = yield* Effect.acquireRelease(
    Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-nats-auth-"))),
    (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
  )
  const path = Path.join(dir, name)
  Fs.writeFileSync(path, contents, { mode: 0o600 })
  return path
})

export const program = Effect.gen(function*() {
  const password = Crypto.randomBytes(16).toString("base64url")
  const nkey = createUser()
  const users = yield* NatsServer.make({
    jetstream: false,
    config: `authorization { users: [
      { user: orders, password: "${password}" },
      { nkey: ${nkey.getPublicKey()} }
    ] }`
  })
  const seedPath = yield* tempFile("orders.nk", new TextDecoder().decode(nkey.getSeed()))
  const jwt = yield* NatsServer.make({ operator: true })
  const user = yield* (jwt.operator?.user({ name: "orders" }) ?? Effect.die("no operator"))
  const credsPath = yield* tempFile("orders.creds", Redacted.value(user.creds))

  return [
    yield* roundTrip("password", connectWithPassword(users.url, "orders", Redacted.make(password))),
    yield* roundTrip("nkey", connectWithNKey(users.url, seedPath)),
    yield* roundTrip("creds", connectWithCreds(jwt.url, credsPath))
  ]
})

export const main = Effect.scoped(program)
