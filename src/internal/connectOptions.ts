/**
 * The connection's options checked and resolved before anything is dialled:
 * server URLs (parsed; credentials in a URL taken into `auth`, as
 * `Redacted`, and removed from it), the credentials (`internal/credentials`)
 * and the durations. Every failure is `InvalidArgument` naming the option.
 *
 * @internal
 */
import type { Duration } from "effect"
import { Redacted, Result } from "effect"
import * as Auth from "../schemas/Auth.ts"
import type * as NatsError from "../schemas/NatsError.ts"
import type { NatsClientOptions } from "../services/NatsClient.ts"
import * as Credentials from "./credentials.ts"
import { invalidArgument } from "./errors.ts"
import { duration } from "./validation.ts"

/** The options a connection is made with, checked. */
export interface Resolved {
  /** Server URLs without credentials. */
  readonly servers: ReadonlyArray<string>
  readonly auth: Auth.Auth | undefined
  readonly attemptTimeout: Duration.Duration
  readonly connectTimeout: Duration.Duration
  readonly drainTimeout: Duration.Duration
  readonly pingInterval: Duration.Duration | undefined
}

const operation = "connect"

/**
 * A server URL: `nats://` or `tls://` (the default scheme is `nats://`), a
 * host, a port in range, nothing after them. The text is checked before the
 * URL parser sees it (it would silently drop tabs and line breaks).
 */
const parseServer = (text: string): URL | string => {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0020\u007f]/.test(text)) return "has whitespace or a control character"
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `nats://${text}`
  let url: URL
  try {
    url = new URL(withScheme)
  } catch {
    return "is not a valid URL (or its port is out of range)"
  }
  if (url.protocol !== "nats:" && url.protocol !== "tls:") return `has the scheme ${url.protocol} (nats: or tls:)`
  if (url.hostname === "") return "has no host"
  if (url.hostname.length > 253 || url.hostname.split(".").some((label) => label.length > 63)) {
    return "has a host name longer than DNS allows (253 characters, 63 a label)"
  }
  if (url.port !== "" && !(Number(url.port) >= 1 && Number(url.port) <= 65535)) return "has a port out of range"
  if ((url.pathname !== "" && url.pathname !== "/") || url.search !== "" || url.hash !== "") {
    return "has a path, query or fragment (a server URL is scheme://host:port)"
  }
  return url
}

/** The URL without its credentials, for nats.js and for messages. */
const withoutCredentials = (url: URL): string => `${url.protocol}//${url.host}`

/** Credentials carried by a URL (`user:password@` or `token@`), as an `Auth`; a string says what is wrong. */
const credentialsOf = (url: URL): Auth.Auth | string | undefined => {
  if (url.username === "" && url.password === "") return undefined
  let user: string
  let password: string
  try {
    user = decodeURIComponent(url.username)
    password = decodeURIComponent(url.password)
  } catch {
    return "has credentials that are not valid percent-encoding"
  }
  return url.password === ""
    ? Auth.token(Redacted.make(user))
    : Auth.userPassword(user, Redacted.make(password))
}

const sameAuth = (a: Auth.Auth, b: Auth.Auth): boolean => {
  if (a._tag === "UserPassword" && b._tag === "UserPassword") {
    return a.user === b.user && Redacted.value(a.password) === Redacted.value(b.password)
  }
  return a._tag === "Token" && b._tag === "Token" && Redacted.value(a.token) === Redacted.value(b.token)
}

/** The servers of the options (a list, or one comma-separated string), parsed; the credentials of their URLs. */
const resolveServers = (
  servers: NatsClientOptions["servers"]
): Result.Result<{ readonly urls: Array<string>; readonly auth: Auth.Auth | undefined }, NatsError.NatsError> => {
  if (servers !== undefined && typeof servers !== "string" && !Array.isArray(servers)) {
    return Result.fail(invalidArgument(operation, "servers must be a URL, a comma-separated list or an array of URLs"))
  }
  const list = servers === undefined
    ? ["nats://127.0.0.1:4222"]
    : typeof servers === "string"
    ? servers.split(",").map((s) => s.trim()).filter((s) => s.length > 0)
    : [...servers]
  if (list.length === 0) return Result.fail(invalidArgument(operation, "servers must name at least one server"))
  const urls: Array<string> = []
  let auth: Auth.Auth | undefined
  for (const [i, text] of list.entries()) {
    const parsed = typeof text === "string" ? parseServer(text) : "is not a string"
    if (typeof parsed === "string") return Result.fail(invalidArgument(operation, `servers[${i}] ${parsed}`))
    const credentials = credentialsOf(parsed)
    if (typeof credentials === "string") return Result.fail(invalidArgument(operation, `servers[${i}] ${credentials}`))
    if (credentials !== undefined) {
      if (auth !== undefined && !sameAuth(auth, credentials)) {
        return Result.fail(invalidArgument(operation, "the server URLs carry different credentials"))
      }
      auth = credentials
    }
    urls.push(withoutCredentials(parsed))
  }
  return Result.succeed({ urls, auth })
}

/** The connect timeout of the options, checked (it bounds the caller's credential and certificate sources too). */
export const connectTimeout = (options: NatsClientOptions): Result.Result<Duration.Duration, NatsError.NatsError> =>
  duration(operation, "connectTimeout", options.connectTimeout, "15 seconds")

/**
 * The options checked, with their defaults; `auth` is the credentials to
 * connect with (the options' own, or what their Effect gave).
 */
export const resolve = (
  options: NatsClientOptions,
  given: Auth.Auth | undefined
): Result.Result<Resolved, NatsError.NatsError> => {
  const servers = resolveServers(options.servers)
  if (Result.isFailure(servers)) return Result.fail(servers.failure)
  const fromUrl = servers.success.auth
  if (fromUrl !== undefined && given !== undefined) {
    return Result.fail(invalidArgument(operation, "credentials are given both in a server URL and in auth"))
  }
  const auth = given ?? fromUrl
  if (options.name !== undefined && typeof options.name !== "string") {
    return Result.fail(invalidArgument(operation, "name must be a string"))
  }
  const problem = auth === undefined
    ? (options.name !== undefined && Buffer.byteLength(options.name) > 1024
      ? "name is longer than 1024 bytes"
      : undefined)
    : Credentials.problem(auth, options.name)
  if (problem !== undefined) return Result.fail(invalidArgument(operation, problem))
  if (options.onEvent !== undefined && typeof options.onEvent !== "function") {
    return Result.fail(invalidArgument(operation, "onEvent must be a function of a ConnectionEvent"))
  }
  return Result.all({
    attemptTimeout: duration(operation, "connectAttemptTimeout", options.connectAttemptTimeout, "3 seconds"),
    connectTimeout: connectTimeout(options),
    drainTimeout: duration(operation, "drainTimeout", options.drainTimeout, "10 seconds"),
    pingInterval: options.pingInterval === undefined
      ? Result.succeed(undefined)
      : duration(operation, "pingInterval", options.pingInterval, 0)
  }).pipe(Result.map((durations) => ({ servers: servers.success.urls, auth, ...durations })))
}
