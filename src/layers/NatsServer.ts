/**
 * A real, throwaway `nats-server` as a scoped Effect service, for tests,
 * examples and benchmarks.
 *
 * `NatsServer.layer(options)` spawns one node (or a 3-node cluster with routes
 * between all nodes) on free loopback ports, each node in its own temporary
 * directory holding its generated config file and JetStream store. Readiness
 * is awaited, never slept: the monitoring endpoint (`/healthz`, `/routez`,
 * `/jsz`) is polled and the client port is probed until the server accepts
 * connections, all routes are up and, for a JetStream cluster, a meta leader
 * has been elected.
 *
 * Free ports are picked just before the nodes start, so another process can
 * take one first; a node then exits saying the address is in use, and the
 * whole server is started again on fresh ports (up to 5 attempts) before
 * `make` fails with `StartFailed`. The `ports` option fixes a single node's
 * ports instead (a taken fixed port fails at once).
 *
 * The service exposes the client URLs and per-node details, plus control
 * operations for fault tests: `stop`, `start`, `restart` and `kill`, all keeping
 * the same ports, config and store directory. When the scope closes every
 * node is terminated (SIGTERM, then SIGKILL after a bounded wait) and the
 * temporary directories are removed. A `process.on("exit")` safeguard kills any
 * still-running node if the Node process exits without running finalizers.
 *
 * The binary is found via the `binary` option, then `NATS_SERVER_BIN`, then
 * `PATH`, then `/usr/sbin/nats-server`.
 *
 * @since 0.1.0
 */
import {
  Clock,
  Context,
  Duration,
  Effect,
  Exit,
  Layer,
  Option,
  Redacted,
  Result,
  Schedule,
  Schema,
  Scope,
  Semaphore
} from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as FsP from "node:fs/promises"
import * as Http from "node:http"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Operator from "../internal/serverOperator.ts"
import { type NodePorts, PortPicker, takenPort } from "../internal/serverPorts.ts"
import * as Pki from "../internal/serverTls.ts"

const ReasonTypeId = "~effect-nats/NatsServerError/Reason" as const
const TypeId = "~effect-nats/NatsServerError" as const

const INSTALL_HINT = "install it with `apt-get install nats-server` (Debian/Ubuntu, as root), " +
  "or download it from https://github.com/nats-io/nats-server/releases and set NATS_SERVER_BIN to its path"

/**
 * The `nats-server` binary could not be found. The message says how to
 * install it.
 *
 * @since 0.1.0
 * @category errors
 */
export class BinaryNotFound extends Schema.TaggedError<BinaryNotFound>("effect-nats/NatsServerError/BinaryNotFound")(
  "BinaryNotFound",
  {
    searched: Schema.Array(Schema.String),
    message: Schema.String
  }
) {
  /**
   * @since 0.1.0
   */
  readonly [ReasonTypeId] = ReasonTypeId

  /**
   * A missing binary does not appear by retrying.
   *
   * @since 0.1.0
   */
  get isRetryable(): boolean {
    return false
  }
}

/**
 * Preparing a node (free ports, temporary directory, config file) failed.
 *
 * @since 0.1.0
 * @category errors
 */
export class SetupFailed extends Schema.TaggedError<SetupFailed>("effect-nats/NatsServerError/SetupFailed")(
  "SetupFailed",
  {
    message: Schema.String,
    cause: Schema.Defect()
  }
) {
  /**
   * @since 0.1.0
   */
  readonly [ReasonTypeId] = ReasonTypeId

  /**
   * Setup failures (file system, port allocation) may be transient.
   *
   * @since 0.1.0
   */
  get isRetryable(): boolean {
    return true
  }
}

/**
 * A node process could not be spawned or exited while starting. `output`
 * holds the tail of the server's stderr.
 *
 * `portInUse` is set when the server exited because a port it had to listen
 * on was already in use: `kind` says which of the node's ports (`"other"` for
 * a port set by the `config` option, e.g. a leaf node port). The initial
 * start of `make` retries with fresh ports when a picked port was taken
 * (see {@link NatsServerOptions}); `start` and `restart` keep the node's ports
 * and fail with this error.
 *
 * @since 0.1.0
 * @category errors
 */
export class StartFailed extends Schema.TaggedError<StartFailed>("effect-nats/NatsServerError/StartFailed")(
  "StartFailed",
  {
    node: Schema.Number,
    exitCode: Schema.NullOr(Schema.Number),
    signal: Schema.NullOr(Schema.String),
    output: Schema.String,
    message: Schema.String,
    portInUse: Schema.optional(
      Schema.Struct({
        kind: Schema.Literals(["client", "monitor", "cluster", "other"]),
        port: Schema.Number
      })
    )
  }
) {
  /**
   * @since 0.1.0
   */
  readonly [ReasonTypeId] = ReasonTypeId

  /**
   * A server that exits on start-up (bad config, ...) will exit again.
   *
   * @since 0.1.0
   */
  get isRetryable(): boolean {
    return false
  }
}

/**
 * A node was running but did not become ready within `startTimeout`.
 * `status` describes the last readiness check.
 *
 * @since 0.1.0
 * @category errors
 */
export class NotReady extends Schema.TaggedError<NotReady>("effect-nats/NatsServerError/NotReady")(
  "NotReady",
  {
    node: Schema.Number,
    status: Schema.String,
    output: Schema.String,
    message: Schema.String
  }
) {
  /**
   * @since 0.1.0
   */
  readonly [ReasonTypeId] = ReasonTypeId

  /**
   * A slow start may succeed on a later attempt.
   *
   * @since 0.1.0
   */
  get isRetryable(): boolean {
    return true
  }
}

/**
 * A control or monitoring operation (`stop`, `kill`, `varz`, ...) failed, or
 * was given an invalid node index.
 *
 * @since 0.1.0
 * @category errors
 */
export class ControlFailed extends Schema.TaggedError<ControlFailed>("effect-nats/NatsServerError/ControlFailed")(
  "ControlFailed",
  {
    operation: Schema.String,
    node: Schema.Number,
    message: Schema.String,
    cause: Schema.optional(Schema.Defect())
  }
) {
  /**
   * @since 0.1.0
   */
  readonly [ReasonTypeId] = ReasonTypeId

  /**
   * @since 0.1.0
   */
  get isRetryable(): boolean {
    return false
  }
}

/**
 * Why a {@link NatsServerError} happened.
 *
 * @since 0.1.0
 * @category errors
 */
export type NatsServerErrorReason = BinaryNotFound | SetupFailed | StartFailed | NotReady | ControlFailed

/**
 * Schema of {@link NatsServerErrorReason}.
 *
 * @since 0.1.0
 * @category errors
 */
export const NatsServerErrorReason: Schema.Union<
  readonly [typeof BinaryNotFound, typeof SetupFailed, typeof StartFailed, typeof NotReady, typeof ControlFailed]
> = Schema.Union([BinaryNotFound, SetupFailed, StartFailed, NotReady, ControlFailed])

/**
 * The single error type of this module; inspect `reason` for details.
 *
 * @since 0.1.0
 * @category errors
 */
export class NatsServerError extends Schema.TaggedError<NatsServerError>("effect-nats/NatsServerError")(
  "NatsServerError",
  { reason: NatsServerErrorReason }
) {
  /**
   * @since 0.1.0
   */
  readonly [TypeId] = TypeId

  /**
   * @since 0.1.0
   */
  override readonly cause = this.reason

  /**
   * The reason's message.
   *
   * @since 0.1.0
   */
  override get message(): string {
    return this.reason.message || this.reason._tag
  }

  /**
   * Delegates to the reason.
   *
   * @since 0.1.0
   */
  get isRetryable(): boolean {
    return this.reason.isRetryable
  }
}

/**
 * Returns `true` when a value is a {@link NatsServerError}.
 *
 * @since 0.1.0
 * @category guards
 */
export const isNatsServerError = (u: unknown): u is NatsServerError =>
  typeof u === "object" && u !== null && TypeId in u

const fail = (reason: NatsServerErrorReason) => Effect.fail(new NatsServerError({ reason }))

/**
 * Options of {@link layer} and {@link make}.
 *
 * @since 0.1.0
 * @category models
 */
export interface NatsServerOptions {
  /** Number of nodes: 1 (default) or a 3-node cluster with routes between all nodes. */
  readonly cluster?: 1 | 3 | undefined
  /** Enable JetStream on every node (default `true`). */
  readonly jetstream?: boolean | undefined
  /**
   * Extra nats-server config text appended to every node's generated config,
   * e.g. `max_payload: 1024` or an `authorization { ... }` block.
   */
  readonly config?: string | undefined
  /** Path of the nats-server binary; defaults to `NATS_SERVER_BIN`, `PATH`, `/usr/sbin/nats-server`. */
  readonly binary?: string | undefined
  /** How long to wait for a node to become ready (default 15 seconds). */
  readonly startTimeout?: Duration.Input | undefined
  /** Forward the servers' stderr to Effect logs. */
  readonly debug?: boolean | undefined
  /**
   * Fixed ports for a single node (`cluster: 1`), e.g.
   * `{ port: 4222, monitorPort: 8222 }` to run a local development server on
   * the usual ports. A port left out is picked free. A fixed port is never
   * replaced: when it is taken, `make` fails at once with `StartFailed`
   * (`portInUse` names it), without retrying. Ports must be integers in
   * 1..65535, distinct from each other; with `cluster: 3` this option fails
   * with `SetupFailed`.
   *
   * @since 0.1.0
   */
  readonly ports?: {
    /** The client port (`listen`). */
    readonly port?: number | undefined
    /** The HTTP monitoring port (`http`). */
    readonly monitorPort?: number | undefined
  } | undefined
  /**
   * Serve TLS on the client port (the URLs are then `tls://`), with a
   * throwaway CA, a server certificate for `localhost` and `127.0.0.1` and a
   * client certificate, made by `openssl` in a temporary directory (see the
   * service's `tls` for their paths). `LocalNats` clients trust the CA.
   *
   * @since 0.1.0
   */
  readonly tls?: TlsServerOptions | undefined
  /**
   * Operator mode (decentralized JWT auth): an operator, a system account and
   * the given accounts (default one, `APP`, with JetStream), preloaded into a
   * memory resolver. Users are minted by the service's `operator.user`.
   *
   * @since 0.1.0
   */
  readonly operator?: true | {
    readonly accounts?: ReadonlyArray<{ readonly name: string; readonly limits?: AccountLimits | undefined }>
  } | undefined
}

/**
 * An account's limits in operator mode.
 *
 * @since 0.1.0
 * @category models
 */
export interface AccountLimits {
  /** Connections at once (-1: unlimited). */
  readonly connections?: number | undefined
  /** Subscriptions at once (-1: unlimited). */
  readonly subscriptions?: number | undefined
  /** Largest payload in bytes (-1: the server's). */
  readonly payload?: number | undefined
  /** JetStream storage in bytes, for memory and file (default unlimited; `false`: no JetStream). */
  readonly jetstream?: false | { readonly memory?: number | undefined; readonly disk?: number | undefined } | undefined
}

/**
 * A user to mint in operator mode: its account (a name the server does not
 * know mints a user of an unknown account), permissions, per-user limits,
 * expiry (in the past: an expired user).
 *
 * @since 0.1.0
 * @category models
 */
export interface UserOptions {
  /** Its account (default: the first). A name the server does not know mints an unknown account. */
  readonly account?: string | undefined
  readonly name?: string | undefined
  readonly publish?: { readonly allow?: ReadonlyArray<string>; readonly deny?: ReadonlyArray<string> } | undefined
  readonly subscribe?: { readonly allow?: ReadonlyArray<string>; readonly deny?: ReadonlyArray<string> } | undefined
  /** When its JWT expires (in the past: an expired user). */
  readonly expires?: Date | undefined
  /** Per-user limits: subscriptions, payload bytes. */
  readonly subscriptions?: number | undefined
  readonly payload?: number | undefined
}

/**
 * The operator of a server in operator mode.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerOperator {
  /** The accounts' names. */
  readonly accounts: ReadonlyArray<string>
  /** A new user: the contents of its creds file (for `Auth.creds`) and its public key. */
  readonly user: (
    options?: UserOptions
  ) => Effect.Effect<{ readonly creds: Redacted.Redacted<string>; readonly publicKey: string }, NatsServerError>
  /** Revokes a user of an account, and reloads the servers' config: its connections are closed. */
  readonly revoke: (account: string, userPublicKey: string) => Effect.Effect<void, NatsServerError>
}

/**
 * TLS settings of a test server.
 *
 * @since 0.1.0
 * @category models
 */
export interface TlsServerOptions {
  /** Require a client certificate signed by the CA (mutual TLS). */
  readonly verify?: boolean | undefined
  /**
   * Require a client certificate and take the user from it (`verify_and_map`):
   * the user named by the certificate's subject (`CN=<clientName>`) must be
   * in an `authorization { users: [...] }` block of `config`.
   */
  readonly verifyAndMap?: boolean | undefined
  /** TLS on the cluster routes too (a 3-node cluster). */
  readonly routes?: boolean | undefined
  /** The common name of the client certificate. Default `effect-nats-client`. */
  readonly clientName?: string | undefined
}

/**
 * The files of a TLS test server's throwaway PKI (PEM).
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerTls {
  /** The CA to trust. */
  readonly caFile: string
  /** The server's certificate and key. */
  readonly certFile: string
  readonly keyFile: string
  /** A client certificate and key signed by the CA (for mutual TLS). */
  readonly clientCertFile: string
  readonly clientKeyFile: string
  /** The client certificate's subject (`CN=...`): the user of `verifyAndMap`. */
  readonly clientSubject: string
}

/**
 * One node of a {@link NatsServer}. Ports, config and store directory stay the
 * same across `stop`/`start`/`restart`/`kill`.
 *
 * @since 0.1.0
 * @category models
 */
export interface NatsServerNode {
  readonly index: number
  /** The node's `server_name`. */
  readonly name: string
  /** Client URL, `nats://127.0.0.1:PORT`. */
  readonly url: string
  readonly port: number
  /** HTTP monitoring port. */
  readonly monitorPort: number
  /** HTTP monitoring base URL, `http://127.0.0.1:MPORT`. */
  readonly monitorUrl: string
  /** Cluster (route) port, only for a clustered server. */
  readonly clusterPort?: number
  /** The node's temporary directory (config file and store live in it). */
  readonly dir: string
  readonly configFile: string
  /** The configured JetStream `store_dir` (nats-server keeps its data in `<storeDir>/jetstream`). */
  readonly storeDir: string
}

/**
 * Decoded `/varz` monitoring output: a few typed fields plus everything else.
 *
 * @since 0.1.0
 * @category models
 */
export const Varz = Schema.StructWithRest(
  Schema.Struct({
    server_id: Schema.String,
    server_name: Schema.String,
    version: Schema.String,
    port: Schema.Number,
    max_payload: Schema.Number
  }),
  [Schema.Record(Schema.String, Schema.Unknown)]
)

/**
 * @since 0.1.0
 * @category models
 */
export type Varz = typeof Varz.Type

/**
 * The shape of the {@link NatsServer} service. Every `node` argument is a
 * node index and defaults to 0.
 *
 * @since 0.1.0
 * @category models
 */
export interface NatsServerShape {
  /** Client URL of node 0. */
  readonly url: string
  /** Client URLs of all nodes. */
  readonly urls: ReadonlyArray<string>
  readonly nodes: ReadonlyArray<NatsServerNode>
  /** Server version, read from `/varz` at start-up, e.g. `"2.9.10"`. */
  readonly version: string
  /** The binary in use. */
  readonly binary: string
  /** Process id of a running node, `undefined` when it is stopped. */
  readonly pid: (node?: number) => Effect.Effect<number | undefined>
  readonly isRunning: (node?: number) => Effect.Effect<boolean>
  /** Graceful stop: SIGTERM and await exit (SIGKILL after a bounded wait). No-op when stopped. */
  readonly stop: (node?: number) => Effect.Effect<void, NatsServerError>
  /** Start again with the same ports, config and store dir; await readiness. No-op when running. */
  readonly start: (node?: number) => Effect.Effect<void, NatsServerError>
  /** `stop` then `start`. */
  readonly restart: (node?: number) => Effect.Effect<void, NatsServerError>
  /** SIGKILL and await exit. No-op when stopped. */
  readonly kill: (node?: number) => Effect.Effect<void, NatsServerError>
  /** GET a monitoring endpoint (e.g. `"/jsz"`, `"/connz"`) and parse its JSON. */
  readonly monitor: (path: string, node?: number) => Effect.Effect<unknown, NatsServerError>
  /** Decoded `/varz` of a node. */
  readonly varz: (node?: number) => Effect.Effect<Varz, NatsServerError>
  /** The last (up to 50) stderr lines of a node's current or last process. */
  readonly logs: (node?: number) => Effect.Effect<ReadonlyArray<string>>
  /** The PKI of a TLS server (`tls` option); `undefined` for a plain one. */
  readonly tls: ServerTls | undefined
  /** The operator of a server in operator mode (`operator` option). */
  readonly operator: ServerOperator | undefined
  /**
   * Rewrites every node's config (with the `config` given now, when given)
   * and makes the running nodes reload it (SIGHUP), awaiting each reload.
   */
  readonly reload: (config?: string) => Effect.Effect<void, NatsServerError>
}

// ---------------------------------------------------------------------------
// internals
// ---------------------------------------------------------------------------

const LOG_LINES = 50
const STOP_TIMEOUT_MS = 10_000
const POLL = Schedule.spaced("50 millis")
/** Real time even under a TestClock (e.g. `layer(...)` of @effect/vitest). */
const liveClock = Clock.Clock.defaultValue()

interface Exited {
  readonly code: number | null
  readonly signal: string | null
  readonly error?: unknown
}

interface Running {
  readonly child: ChildProcess
  readonly exited: Promise<Exited>
  /** Set once the process has exited. */
  exit: Exited | undefined
}

interface NodeState {
  readonly node: NatsServerNode
  /** The cluster's name (the same for every node of a server). */
  readonly clusterName: string
  readonly lines: Array<string>
  running: Running | undefined
}

/** What all nodes of one server share, fixed for the server's lifetime. */
interface ServerEnv {
  readonly binary: string
  readonly size: number
  readonly jetstream: boolean
  /** The `config` option: extra config text for every node (`reload` may replace it). */
  extraConfig: string | undefined
  readonly debug: boolean
  readonly startTimeoutMs: number
  /** The `ports` option: fixed ports of a single node, never retried with other ports. */
  readonly fixedPorts: NonNullable<NatsServerOptions["ports"]>
  /** The context `make` runs in: server output is logged with its logger. */
  readonly context: Context.Context<never>
  /** TLS: the options and the PKI. */
  readonly tls: { readonly options: TlsServerOptions; readonly pki: Pki.Pki } | undefined
  /** Operator mode: the operator, its accounts (their JWTs change when a user is revoked). */
  readonly operator: Awaited<ReturnType<typeof Operator.make>> | undefined
}

// --- process-exit safeguard --------------------------------------------------

/** All children of all live servers in this process, killed on `process.exit`. */
const liveChildren = new Set<ChildProcess>()
const onProcessExit = () => {
  for (const child of liveChildren) {
    try {
      child.kill("SIGKILL")
    } catch {
      // ignore
    }
  }
}
let exitHookUsers = 0
const registerExitHook = () => {
  if (exitHookUsers++ === 0) process.on("exit", onProcessExit)
}
const unregisterExitHook = () => {
  if (--exitHookUsers === 0) process.removeListener("exit", onProcessExit)
}

// --- binary lookup ----------------------------------------------------------

const isExecutable = (file: string): boolean => {
  try {
    Fs.accessSync(file, Fs.constants.X_OK)
    return Fs.statSync(file).isFile()
  } catch {
    return false
  }
}

const findBinary = (option: string | undefined): Effect.Effect<string, NatsServerError> =>
  Effect.suspend(() => {
    const searched: Array<string> = []
    const check = (candidate: string) => {
      searched.push(candidate)
      return isExecutable(candidate)
    }
    if (option !== undefined) {
      if (check(option)) return Effect.succeed(option)
      return fail(
        new BinaryNotFound({
          searched,
          message: `nats-server binary not found at ${option} (binary option): ${INSTALL_HINT}`
        })
      )
    }
    const env = process.env["NATS_SERVER_BIN"]
    if (env !== undefined && env !== "") {
      if (check(env)) return Effect.succeed(env)
      return fail(
        new BinaryNotFound({
          searched,
          message: `nats-server binary not found at ${env} (NATS_SERVER_BIN): ${INSTALL_HINT}`
        })
      )
    }
    for (const dir of (process.env["PATH"] ?? "").split(Path.delimiter)) {
      if (dir === "") continue
      const candidate = Path.join(dir, "nats-server")
      if (check(candidate)) return Effect.succeed(candidate)
    }
    if (check("/usr/sbin/nats-server")) return Effect.succeed("/usr/sbin/nats-server")
    return fail(new BinaryNotFound({ searched, message: `nats-server not found on PATH: ${INSTALL_HINT}` }))
  })

// --- monitoring endpoint and client port ------------------------------------

const httpGet = (port: number, path: string, signal: AbortSignal) =>
  new Promise<{ readonly status: number; readonly body: string }>((resolve, reject) => {
    const req = Http.get({ host: "127.0.0.1", port, path, agent: false, signal, timeout: 2_000 }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (c: Buffer) => chunks.push(c))
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }))
      res.on("error", reject)
    })
    req.on("timeout", () => req.destroy(new Error(`GET ${path} timed out`)))
    req.on("error", reject)
  })

const tcpAccepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = Net.connect({ host: "127.0.0.1", port })
    socket.once("connect", () => {
      socket.destroy()
      resolve(true)
    })
    socket.once("error", () => resolve(false))
  })

const decodeJson = Schema.decodeUnknownOption(Schema.fromJsonString(Schema.Unknown))
const decodeRoutez = Schema.decodeUnknownOption(Schema.fromJsonString(Schema.Struct({ num_routes: Schema.Number })))
const decodeJsz = Schema.decodeUnknownOption(
  Schema.fromJsonString(
    Schema.Struct({
      meta_cluster: Schema.optional(Schema.Struct({ leader: Schema.optional(Schema.String) }))
    })
  )
)

/** GET a monitoring endpoint of a node and parse its JSON (`monitor` of the service). */
const getJson = (state: NodeState, path: string): Effect.Effect<unknown, NatsServerError> =>
  Effect.gen(function*() {
    const res = yield* Effect.tryPromise({
      try: (signal) => httpGet(state.node.monitorPort, path, signal),
      catch: (cause) =>
        new NatsServerError({
          reason: new ControlFailed({
            operation: "monitor",
            node: state.node.index,
            message: `GET ${state.node.monitorUrl}${path} failed: ${String(cause)}`,
            cause
          })
        })
    })
    const json = decodeJson(res.body)
    if (res.status !== 200 || Option.isNone(json)) {
      return yield* fail(
        new ControlFailed({
          operation: "monitor",
          node: state.node.index,
          message: `GET ${state.node.monitorUrl}${path}: HTTP ${res.status} ${res.body.slice(0, 200)}`
        })
      )
    }
    return json.value
  })

// --- node layout and config rendering ---------------------------------------

const quote = (s: string) => JSON.stringify(s)

/** The nodes of a server, from their ports and temporary directories. */
const planNodes = (
  ports: ReadonlyArray<NodePorts>,
  dirs: ReadonlyArray<string>,
  tls: boolean
): Array<NatsServerNode> =>
  ports.map((p, index): NatsServerNode => {
    const dir = dirs[index] ?? ""
    return {
      index,
      name: `node-${index}`,
      url: `${tls ? "tls" : "nats"}://127.0.0.1:${p.port}`,
      port: p.port,
      monitorPort: p.monitorPort,
      monitorUrl: `http://127.0.0.1:${p.monitorPort}`,
      ...(ports.length > 1 && p.clusterPort !== undefined ? { clusterPort: p.clusterPort } : {}),
      dir,
      configFile: Path.join(dir, "nats-server.conf"),
      storeDir: Path.join(dir, "store")
    }
  })

/** A `tls { ... }` block of the PKI's server certificate. */
const tlsBlock = (pki: Pki.Pki, verify: "verify" | "verify_and_map" | undefined, indent: string): Array<string> => [
  `${indent}tls {`,
  `${indent}  cert_file: ${quote(pki.certFile)}`,
  `${indent}  key_file: ${quote(pki.keyFile)}`,
  `${indent}  ca_file: ${quote(pki.caFile)}`,
  ...(verify === undefined ? [] : [`${indent}  ${verify}: true`]),
  `${indent}  timeout: 5`,
  `${indent}}`
]

const renderConfig = (
  node: NatsServerNode,
  nodes: ReadonlyArray<NatsServerNode>,
  clusterName: string,
  env: ServerEnv
): string => {
  const lines = [
    "# generated by effect-nats NatsServer",
    `server_name: ${quote(node.name)}`,
    `listen: "127.0.0.1:${node.port}"`,
    `http: "127.0.0.1:${node.monitorPort}"`
  ]
  const tls = env.tls
  if (tls !== undefined) {
    const verify = tls.options.verifyAndMap === true
      ? "verify_and_map"
      : tls.options.verify === true
      ? "verify"
      : undefined
    lines.push(...tlsBlock(tls.pki, verify, ""))
  }
  if (env.jetstream) lines.push(`jetstream { store_dir: ${quote(node.storeDir)} }`)
  if (node.clusterPort !== undefined) {
    const routes = nodes
      .filter((other) => other.index !== node.index)
      .map((other) => `nats-route://127.0.0.1:${other.clusterPort}`)
    lines.push(
      "cluster {",
      `  name: ${quote(clusterName)}`,
      `  listen: "127.0.0.1:${node.clusterPort}"`,
      `  routes: [${routes.map(quote).join(", ")}]`,
      ...(tls !== undefined && tls.options.routes === true ? tlsBlock(tls.pki, "verify", "  ") : []),
      "}"
    )
  }
  if (env.operator !== undefined) lines.push("", "# operator mode", Operator.configText(env.operator))
  const extra = env.extraConfig
  if (extra !== undefined && extra.trim() !== "") lines.push("", "# extra config", extra)
  return lines.join("\n") + "\n"
}

// --- ports ------------------------------------------------------------------

const setupFailed = (cause: unknown) =>
  new NatsServerError({
    reason: new SetupFailed({ message: `preparing nats-server failed: ${String(cause)}`, cause })
  })

/** The `ports` option, checked: a typed `SetupFailed` for a cluster or an invalid port. */
const checkFixedPorts = (
  size: number,
  ports: NatsServerOptions["ports"]
): Effect.Effect<NonNullable<NatsServerOptions["ports"]>, NatsServerError> => {
  if (ports === undefined) return Effect.succeed({})
  const invalid = (problem: string) => {
    const cause = new Error(`invalid ports option ${JSON.stringify(ports)}: ${problem}`)
    return fail(new SetupFailed({ message: cause.message, cause }))
  }
  if (size !== 1) return invalid("fixed ports are supported for a single node only")
  const given = [ports.port, ports.monitorPort].filter((p) => p !== undefined)
  if (given.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) {
    return invalid("a port must be an integer in 1..65535")
  }
  if (given.length === 2 && ports.port === ports.monitorPort) return invalid("port and monitorPort must differ")
  return Effect.succeed(ports)
}

/** Ports for every node: the fixed ones (`ports` option), the others from the {@link PortPicker}. */
const pickPorts = (env: ServerEnv): Effect.Effect<ReadonlyArray<NodePorts>, NatsServerError> =>
  Effect.gen(function*() {
    const { monitorPort, port } = env.fixedPorts
    if (port !== undefined && monitorPort !== undefined) return [{ port, monitorPort }]
    const pick = yield* PortPicker
    const picked = yield* Effect.tryPromise({ try: () => pick(env.size, env.size > 1), catch: setupFailed })
    if (port === undefined && monitorPort === undefined) return picked
    // One port is fixed (a single node): of the two picked, take one that differs from it.
    const first = picked[0] ?? { port: 0, monitorPort: 0 }
    const other = (fixed: number) => first.port !== fixed ? first.port : first.monitorPort
    if (port !== undefined) return [{ port, monitorPort: other(port) }]
    const monitor = monitorPort ?? 0
    return [{ port: other(monitor), monitorPort: monitor }]
  })

// --- TLS --------------------------------------------------------------------

/** The throwaway PKI of a TLS server, removed with the scope; a missing `openssl` is a typed `SetupFailed`. */
const makePki = (options: TlsServerOptions): Effect.Effect<Pki.Pki, NatsServerError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: () => Pki.make(Os.tmpdir(), options.clientName ?? "effect-nats-client"),
      catch: (cause) =>
        new NatsServerError({
          reason: new SetupFailed({
            message: `making the TLS certificates failed (is openssl installed? apt-get install openssl): ${
              cause instanceof Error ? cause.message : String(cause)
            }`,
            cause
          })
        })
    }),
    (pki) => Effect.promise(() => FsP.rm(pki.dir, { recursive: true, force: true }).catch(() => undefined))
  )

// --- operator mode ------------------------------------------------------------

const operatorFailed = (what: string) => (cause: unknown) =>
  new NatsServerError({
    reason: new SetupFailed({
      message: `${what} failed: ${cause instanceof Error ? cause.message : String(cause)}`,
      cause
    })
  })

/** The operator and accounts of a server in operator mode. */
const makeOperator = (options: NonNullable<NatsServerOptions["operator"]>) =>
  Effect.tryPromise({
    try: () => Operator.make(options === true || options.accounts === undefined ? [{ name: "APP" }] : options.accounts),
    catch: operatorFailed("minting the operator and its accounts")
  })

/** Writes a node's config from the server's env as it is now. */
const writeConfig = (env: ServerEnv, states: ReadonlyArray<NodeState>, state: NodeState) =>
  Effect.tryPromise({
    try: () =>
      FsP.writeFile(
        state.node.configFile,
        renderConfig(state.node, states.map((s) => s.node), state.clusterName, env)
      ),
    catch: setupFailed
  })

/** Makes a running node reload its config (SIGHUP) and awaits it (its `/varz` config load time changes). */
const reloadNode = (state: NodeState): Effect.Effect<void, NatsServerError> =>
  Effect.gen(function*() {
    const running = state.running
    if (running === undefined || running.exit !== undefined) return
    const loadTime = (varz: unknown) => (varz as { readonly config_load_time?: string }).config_load_time
    const before = loadTime(yield* getJson(state, "/varz"))
    running.child.kill("SIGHUP")
    yield* getJson(state, "/varz").pipe(
      Effect.flatMap((varz) => loadTime(varz) === before ? Effect.fail("not yet" as const) : Effect.void),
      Effect.retry({ schedule: POLL.pipe(Schedule.upTo({ times: 200 })), while: (e) => e === "not yet" }),
      Effect.catchIf((e) => e === "not yet", () =>
        fail(
          new ControlFailed({
            operation: "reload",
            node: state.node.index,
            message: `nats-server ${state.node.name} did not reload its config:\n${tail(state)}`
          })
        ))
    )
  })

// --- preparing and tearing down a server ------------------------------------

/** Temporary directories and config files for nodes on the given ports; registers the exit hook. */
const createNodes = async (env: ServerEnv, ports: ReadonlyArray<NodePorts>): Promise<Array<NodeState>> => {
  const clusterName = `effect-nats-${Math.random().toString(36).slice(2, 8)}`
  const dirs: Array<string> = []
  try {
    for (let index = 0; index < ports.length; index++) {
      dirs.push(await FsP.mkdtemp(Path.join(Os.tmpdir(), `effect-nats-${index}-`)))
    }
    const nodes = planNodes(ports, dirs, env.tls !== undefined)
    for (const node of nodes) {
      await FsP.writeFile(node.configFile, renderConfig(node, nodes, clusterName, env))
    }
    registerExitHook()
    return nodes.map((node): NodeState => ({ node, clusterName, lines: [], running: undefined }))
  } catch (e) {
    await Promise.all(dirs.map((dir) => FsP.rm(dir, { recursive: true, force: true })))
    throw e
  }
}

/** Terminate every node, then remove every temporary directory, then drop the exit hook. */
const teardown = (states: ReadonlyArray<NodeState>): Effect.Effect<void> =>
  Effect.forEach(states, (state) => terminate(state), { concurrency: "unbounded", discard: true }).pipe(
    Effect.andThen(
      Effect.promise(() =>
        Promise.all(states.map((s) => FsP.rm(s.node.dir, { recursive: true, force: true }).catch(() => undefined)))
      )
    ),
    Effect.ensuring(Effect.sync(unregisterExitHook)),
    Effect.provideService(Clock.Clock, liveClock)
  )

/** Acquire: temporary directories, config files, exit hook. Release: {@link teardown}. */
const prepareNodes = (
  env: ServerEnv,
  ports: ReadonlyArray<NodePorts>
): Effect.Effect<Array<NodeState>, NatsServerError, Scope.Scope> =>
  Effect.acquireRelease(Effect.tryPromise({ try: () => createNodes(env, ports), catch: setupFailed }), teardown)

// --- node process control ---------------------------------------------------

const tail = (state: NodeState) => state.lines.slice(-20).join("\n")

const isUp = (state: NodeState) => state.running !== undefined && state.running.exit === undefined

/** Forward one server log line (`[pid] date time [LVL] text`) at the matching log level. */
const logLine = (line: string): Effect.Effect<void> => {
  const match = /^(?:\[\d+\] \S+ \S+ )?\[([A-Z]{3})\] ?(.*)$/.exec(line)
  const text = match?.[2] ?? line
  switch (match?.[1]) {
    case "ERR":
    case "FTL":
      return Effect.logError(text)
    case "WRN":
      return Effect.logWarning(text)
    case "DBG":
    case "TRC":
      return Effect.logDebug(text)
    default:
      return Effect.logInfo(text)
  }
}

/** Spawn a node's process (it is not ready yet); its stderr lines go to `state.lines` (and the logs with `debug`). */
const spawnNode = (env: ServerEnv, state: NodeState): Effect.Effect<void, NatsServerError> =>
  Effect.try({
    try: (): number | undefined => {
      state.lines.length = 0
      const child = spawn(env.binary, ["-c", state.node.configFile], { stdio: ["ignore", "ignore", "pipe"] })
      const running: Running = {
        child,
        exit: undefined,
        // "close", not "exit": stderr is read to its end first, so a failed
        // start's output (e.g. the line naming a port in use) is complete.
        exited: new Promise<Exited>((resolve) => {
          child.once("close", (code, signal) => resolve({ code, signal }))
          child.once("error", (error) => resolve({ code: null, signal: null, error }))
        }).then((exit) => {
          running.exit = exit
          liveChildren.delete(child)
          return exit
        })
      }
      liveChildren.add(child)
      const addLine = (line: string) => {
        state.lines.push(line)
        if (state.lines.length > LOG_LINES) state.lines.shift()
        if (env.debug) {
          Effect.runForkWith(env.context)(logLine(line).pipe(Effect.annotateLogs({ natsServer: state.node.name })))
        }
      }
      let partial = ""
      child.stderr?.setEncoding("utf8")
      child.stderr?.on("data", (chunk: string) => {
        const parts = (partial + chunk).split("\n")
        partial = parts.pop() ?? ""
        for (const line of parts) addLine(line)
      })
      child.stderr?.on("end", () => {
        if (partial !== "") addLine(partial)
        partial = ""
      })
      state.running = running
      return child.pid
    },
    catch: (cause) =>
      new NatsServerError({
        reason: new StartFailed({
          node: state.node.index,
          exitCode: null,
          signal: null,
          output: "",
          message: `spawning ${env.binary} failed: ${String(cause)}`
        })
      })
  }).pipe(
    Effect.flatMap((pid) => Effect.annotateCurrentSpan("pid", pid)),
    Effect.withSpan("NatsServer.spawnNode", { attributes: { node: state.node.index } })
  )

const waitExit = (running: Running, ms: number): Effect.Effect<boolean> =>
  Effect.promise(() => running.exited).pipe(
    Effect.as(true),
    Effect.timeoutOrElse({ duration: Duration.millis(ms), orElse: () => Effect.succeed(false) })
  )

/** SIGTERM (or the given signal), await exit (bounded), then SIGKILL. Never fails. */
function terminate(state: NodeState, signal: "SIGTERM" | "SIGKILL" = "SIGTERM"): Effect.Effect<void> {
  return Effect.gen(function*() {
    const running = state.running
    if (running === undefined || running.exit !== undefined) return
    running.child.kill(signal)
    if (!(yield* waitExit(running, STOP_TIMEOUT_MS))) {
      running.child.kill("SIGKILL")
      yield* Effect.promise(() => running.exited)
    }
  }).pipe(Effect.uninterruptible)
}

// --- readiness --------------------------------------------------------------

class NotYet {
  readonly _tag = "NotYet"
  readonly status: string
  constructor(status: string) {
    this.status = status
  }
}

/** Which of a node's ports its output says was already in use. */
const portInUse = (state: NodeState): StartFailed["portInUse"] => {
  const port = takenPort(state.lines)
  if (port === undefined) return undefined
  const { clusterPort, monitorPort, port: clientPort } = state.node
  const kind = port === clientPort
    ? "client"
    : port === monitorPort
    ? "monitor"
    : port === clusterPort
    ? "cluster"
    : "other"
  return { kind, port }
}

/** A node's process exited while it was starting. */
const exitedDuringStartup = (state: NodeState, exit: Exited): StartFailed => {
  const { code, error, signal } = exit
  const taken = portInUse(state)
  const why = taken === undefined
    ? ""
    : taken.kind === "other"
    ? `: port ${taken.port} is already in use`
    : `: its ${taken.kind} port ${taken.port} is already in use`
  return new StartFailed({
    node: state.node.index,
    exitCode: code,
    signal,
    output: tail(state),
    message: `nats-server ${state.node.name} exited during start-up${why} (${
      error !== undefined ? String(error) : `code ${code}, signal ${signal}`
    }):\n${tail(state)}`,
    ...(taken !== undefined ? { portInUse: taken } : {})
  })
}

/**
 * One readiness probe of a node; fails with NotYet (retried) or NatsServerError.
 *
 * A node is ready when its monitoring endpoint answers (`/healthz` when a
 * majority of the cluster is running, else `/varz`: JetStream cannot be
 * healthy without a quorum), its client port accepts connections and, in a
 * cluster, it has routes to every other running node and (JetStream with a
 * quorum) knows the meta leader.
 */
const probe = (
  env: ServerEnv,
  states: ReadonlyArray<NodeState>,
  state: NodeState
): Effect.Effect<void, NotYet | NatsServerError> =>
  Effect.gen(function*() {
    const running = state.running
    if (running === undefined) return yield* Effect.fail(new NotYet("not started"))
    if (running.exit !== undefined) return yield* fail(exitedDuringStartup(state, running.exit))
    const get = (path: string) =>
      Effect.tryPromise({
        try: (signal) => httpGet(state.node.monitorPort, path, signal),
        catch: () => new NotYet(`monitoring port ${state.node.monitorPort} not answering ${path}`)
      })
    const others = states.filter((s) => s !== state && isUp(s)).length
    const clustered = env.size > 1
    const quorum = !clustered || others + 1 > env.size / 2
    if (quorum) {
      const health = yield* get("/healthz")
      if (health.status !== 200) {
        return yield* Effect.fail(new NotYet(`/healthz: ${health.status} ${health.body}`))
      }
    } else {
      const varz = yield* get("/varz")
      if (varz.status !== 200) return yield* Effect.fail(new NotYet(`/varz: ${varz.status}`))
    }
    if (!(yield* Effect.promise(() => tcpAccepts(state.node.port)))) {
      return yield* Effect.fail(new NotYet(`client port ${state.node.port} not accepting`))
    }
    if (clustered) {
      const routes = Option.getOrUndefined(decodeRoutez((yield* get("/routez")).body))?.num_routes
      if (routes === undefined || routes < others) {
        return yield* Effect.fail(new NotYet(`/routez: num_routes ${String(routes)} < ${others}`))
      }
      if (env.jetstream && quorum) {
        const leader = Option.getOrUndefined(decodeJsz((yield* get("/jsz")).body))?.meta_cluster?.leader
        if (leader === undefined || leader === "") {
          return yield* Effect.fail(new NotYet("/jsz: no JetStream meta leader yet"))
        }
      }
    }
  })

/** Poll {@link probe} until the node is ready; `NotReady` after `startTimeout`. Needs a live clock. */
const awaitReady = (
  env: ServerEnv,
  states: ReadonlyArray<NodeState>,
  state: NodeState
): Effect.Effect<void, NatsServerError> => {
  let status = "not probed"
  return probe(env, states, state).pipe(
    Effect.tapError((e) =>
      Effect.sync(() => {
        if (e instanceof NotYet) status = e.status
      })
    ),
    Effect.retry({ schedule: POLL, while: (e) => e instanceof NotYet }),
    Effect.catchIf(
      (e): e is NotYet => e instanceof NotYet,
      (e) => Effect.die(e)
    ),
    Effect.timeoutOrElse({
      duration: Duration.millis(env.startTimeoutMs),
      orElse: () =>
        fail(
          new NotReady({
            node: state.node.index,
            status,
            output: tail(state),
            message: `nats-server ${state.node.name} not ready after ${env.startTimeoutMs} ms (${status}):\n${
              tail(state)
            }`
          })
        )
    }),
    Effect.withSpan("NatsServer.awaitReady", { attributes: { node: state.node.index } })
  )
}

// --- start-up ---------------------------------------------------------------

/** Start one stopped node and await its readiness (`start`/`restart`); no-op when it runs. Needs a live clock. */
const startNode = (
  env: ServerEnv,
  states: ReadonlyArray<NodeState>,
  state: NodeState
): Effect.Effect<void, NatsServerError> =>
  Effect.suspend(() =>
    isUp(state) ? Effect.void : spawnNode(env, state).pipe(Effect.andThen(awaitReady(env, states, state)))
  )

/**
 * Start every node: spawn all of them, then await the readiness of all of
 * them concurrently (the first failure, e.g. a node that exits, interrupts
 * the other waits).
 *
 * Spawning is a plain loop on purpose: `child_process.spawn` is synchronous
 * (a few ms per node), so running it in fibers would change nothing, and
 * spawning every node before the first readiness probe means each node's
 * expectations (quorum, routes to every other node, a JetStream meta leader)
 * count all nodes from the first probe on. Nodes then boot, route to each
 * other and elect a meta leader in parallel.
 */
const startNodes = (env: ServerEnv, states: ReadonlyArray<NodeState>): Effect.Effect<void, NatsServerError> =>
  Effect.forEach(states, (state) => spawnNode(env, state), { discard: true }).pipe(
    Effect.andThen(
      Effect.forEach(states, (state) => awaitReady(env, states, state), { concurrency: "unbounded", discard: true })
    ),
    Effect.provideService(Clock.Clock, liveClock)
  )

/** How many times the initial start picks ports, when a picked port was taken before nats-server bound it. */
const START_ATTEMPTS = 5

/** A start failure worth retrying on fresh ports: one of the node's own picked (not fixed) ports was in use. */
const isTakenPickedPort = (env: ServerEnv, error: NatsServerError): boolean => {
  const taken = error.reason._tag === "StartFailed" ? error.reason.portInUse : undefined
  if (taken === undefined) return false
  switch (taken.kind) {
    case "client":
      return env.fixedPorts.port === undefined
    case "monitor":
      return env.fixedPorts.monitorPort === undefined
    case "cluster":
      return true
    case "other":
      return false
  }
}

/** The last attempt's StartFailed, saying how many attempts were made. */
const afterAttempts = (error: NatsServerError, attempts: number): NatsServerError => {
  const reason = error.reason
  if (reason._tag !== "StartFailed") return error
  return new NatsServerError({
    reason: new StartFailed({
      node: reason.node,
      exitCode: reason.exitCode,
      signal: reason.signal,
      output: reason.output,
      message: `after ${attempts} attempts with fresh ports: ${reason.message}`,
      ...(reason.portInUse !== undefined ? { portInUse: reason.portInUse } : {})
    })
  })
}

/**
 * Pick ports, prepare and start every node, in the current scope.
 *
 * Picked ports were free a moment before nats-server binds them; when a node
 * exits because one was taken in between, the attempt is torn down (nodes
 * terminated, directories removed) and the whole server starts again with
 * fresh ports for every node (a cluster's routes name each other's ports, so
 * every config is regenerated), up to {@link START_ATTEMPTS} times. A taken
 * fixed port (`ports` option) fails at once.
 */
const launch = (env: ServerEnv): Effect.Effect<Array<NodeState>, NatsServerError, Scope.Scope> =>
  Effect.gen(function*() {
    const parent = yield* Scope.Scope
    for (let attempt = 1;; attempt++) {
      // Each attempt's resources live in a child scope: closed at once when
      // the attempt fails, else with the parent.
      const scope = yield* Scope.fork(parent)
      const result = yield* pickPorts(env).pipe(
        Effect.flatMap((ports) => prepareNodes(env, ports)),
        Effect.tap((states) => startNodes(env, states)),
        Scope.provide(scope),
        Effect.withSpan("NatsServer.startAttempt", { attributes: { attempt } }),
        Effect.result
      )
      if (Result.isSuccess(result)) return result.success
      yield* Scope.close(scope, Exit.fail(result.failure))
      if (!isTakenPickedPort(env, result.failure)) return yield* Effect.fail(result.failure)
      if (attempt >= START_ATTEMPTS) return yield* Effect.fail(afterAttempts(result.failure, attempt))
      yield* Effect.logDebug(
        `nats-server start attempt ${attempt} failed, trying fresh ports: ${result.failure.message}`
      )
    }
  })

/**
 * Start a throwaway nats-server (one node or a 3-node cluster) in the current
 * scope; it is terminated and its temporary directories removed when the
 * scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options?: NatsServerOptions) => Effect.Effect<NatsServerShape, NatsServerError, Scope.Scope> =
  Effect
    .fn("NatsServer.make")(function*(options?: NatsServerOptions) {
      const size = options?.cluster ?? 1
      const fixedPorts = yield* checkFixedPorts(size, options?.ports)
      const env: ServerEnv = {
        binary: yield* findBinary(options?.binary),
        size,
        jetstream: options?.jetstream ?? true,
        extraConfig: options?.config,
        debug: options?.debug ?? false,
        startTimeoutMs: Duration.toMillis(options?.startTimeout ?? Duration.seconds(15)),
        fixedPorts,
        context: yield* Effect.context<never>(),
        tls: options?.tls === undefined ? undefined : { options: options.tls, pki: yield* makePki(options.tls) },
        operator: options?.operator === undefined ? undefined : yield* makeOperator(options.operator)
      }
      const lock = yield* Semaphore.make(1)

      const states = yield* launch(env)

      const stateOf = (operation: string, node: number | undefined): Effect.Effect<NodeState, NatsServerError> => {
        const index = node ?? 0
        const state = states[index]
        return state === undefined
          ? fail(
            new ControlFailed({
              operation,
              node: index,
              message: `${operation}: no node ${index} (cluster of ${size})`
            })
          )
          : Effect.succeed(state)
      }

      /** Control operations run one at a time, in real time. */
      const control = <A, E>(effect: Effect.Effect<A, E>) =>
        lock.withPermit(effect).pipe(Effect.provideService(Clock.Clock, liveClock))

      const monitor = Effect.fn("NatsServer.monitor")(function*(path: string, node?: number) {
        return yield* getJson(yield* stateOf("monitor", node), path)
      }, Effect.provideService(Clock.Clock, liveClock))

      const varz = Effect.fn("NatsServer.varz")(function*(node?: number) {
        const json = yield* monitor("/varz", node)
        return yield* Schema.decodeUnknownEffect(Varz)(json).pipe(
          Effect.mapError((cause) =>
            new NatsServerError({
              reason: new ControlFailed({
                operation: "varz",
                node: node ?? 0,
                message: `unexpected /varz output: ${String(cause)}`,
                cause
              })
            })
          )
        )
      })

      const version = (yield* varz(0)).version

      const stop = Effect.fn("NatsServer.stop")(function*(node?: number) {
        yield* control(terminate(yield* stateOf("stop", node)))
      })
      const kill = Effect.fn("NatsServer.kill")(function*(node?: number) {
        yield* control(terminate(yield* stateOf("kill", node), "SIGKILL"))
      })
      const start = Effect.fn("NatsServer.start")(function*(node?: number) {
        yield* control(startNode(env, states, yield* stateOf("start", node)))
      })
      const restart = Effect.fn("NatsServer.restart")(function*(node?: number) {
        const state = yield* stateOf("restart", node)
        yield* control(terminate(state).pipe(Effect.andThen(startNode(env, states, state))))
      })
      const pid = (node?: number) =>
        Effect.sync(() => {
          const state = states[node ?? 0]
          return state !== undefined && isUp(state) ? state.running?.child.pid : undefined
        })
      const isRunning = (node?: number) =>
        Effect.sync(() => {
          const state = states[node ?? 0]
          return state !== undefined && isUp(state)
        })
      const logs = (node?: number) => Effect.sync((): ReadonlyArray<string> => [...(states[node ?? 0]?.lines ?? [])])

      const reload = Effect.fn("NatsServer.reload")(function*(config?: string) {
        yield* control(Effect.gen(function*() {
          if (config !== undefined) env.extraConfig = config
          for (const state of states) yield* writeConfig(env, states, state)
          yield* Effect.forEach(states, reloadNode, { concurrency: "unbounded", discard: true })
        }))
      })

      const setup = env.operator
      const operator: ServerOperator | undefined = setup === undefined ? undefined : {
        accounts: setup.accounts.map((a) => a.name),
        user: (options) =>
          Effect.tryPromise({
            try: () => Operator.user(setup, options ?? {}),
            catch: operatorFailed("minting a user")
          }).pipe(Effect.map(({ creds, publicKey }) => ({ creds: Redacted.make(creds), publicKey }))),
        revoke: (account, userPublicKey) =>
          Effect.tryPromise({
            try: () => Operator.revoke(setup, account, userPublicKey),
            catch: operatorFailed("revoking a user")
          }).pipe(Effect.andThen(reload()))
      }

      return NatsServer.of({
        url: states[0]?.node.url ?? "",
        urls: states.map((s) => s.node.url),
        nodes: states.map((s) => s.node),
        version,
        binary: env.binary,
        pid,
        isRunning,
        stop,
        start,
        restart,
        kill,
        monitor,
        varz,
        logs,
        reload,
        operator,
        tls: env.tls === undefined ? undefined : {
          caFile: env.tls.pki.caFile,
          certFile: env.tls.pki.certFile,
          keyFile: env.tls.pki.keyFile,
          clientCertFile: env.tls.pki.clientCertFile,
          clientKeyFile: env.tls.pki.clientKeyFile,
          clientSubject: env.tls.pki.clientSubject
        }
      })
    })

/**
 * A real nats-server (one node, or a 3-node cluster) for tests, examples and
 * benchmarks.
 *
 * @since 0.1.0
 * @example
 * ```ts
 * layer(NatsServer.layer({ cluster: 3 }))("failover", (it) => {
 *   it.effect("a node goes away", () =>
 *     Effect.gen(function*() {
 *       const server = yield* NatsServer.NatsServer
 *       yield* server.kill(1)
 *     }))
 * })
 * ```
 *
 * @category services
 */
export class NatsServer extends Context.Service<NatsServer, NatsServerShape>()("effect-nats/NatsServer") {
  /**
   * A scoped layer that starts the server(s) and tears them down on release.
   *
   * @since 0.1.0
   * @category layers
   */
  static readonly layer = (options?: NatsServerOptions): Layer.Layer<NatsServer, NatsServerError> =>
    Layer.effect(NatsServer, make(options))
}

/**
 * Same as {@link NatsServer.layer}.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = NatsServer.layer
