/**
 * Operator mode for test servers (decentralized JWT auth): an operator, a
 * system account and the test's accounts, minted with `@nats-io/jwt` and
 * preloaded into a memory resolver; users minted on demand, as the contents
 * of a creds file. Revoking a user re-signs its account's JWT with the
 * revocation (the server takes it on a config reload).
 *
 * @internal
 */
import { encodeAccount, encodeOperator, encodeUser, fmtCreds } from "@nats-io/jwt"
import type { Account } from "@nats-io/jwt"
import type { KeyPair } from "@nats-io/nkeys"
import { createAccount, createOperator, createUser, fromPublic } from "@nats-io/nkeys"
import type { AccountLimits, UserOptions } from "../layers/NatsServer.ts"
import { validatePattern } from "../schemas/Subject.ts"

interface MintedAccount {
  readonly name: string
  readonly key: KeyPair
  readonly claims: Partial<Account>
  jwt: string
}

/** The operator of a test server, its accounts, and what the server must be told. */
export interface OperatorSetup {
  readonly operatorJwt: string
  readonly system: MintedAccount
  readonly accounts: ReadonlyArray<MintedAccount>
}

const jetstreamLimits = (limits: AccountLimits | undefined) =>
  limits?.jetstream === false
    ? {}
    : {
      mem_storage: limits?.jetstream?.memory ?? -1,
      disk_storage: limits?.jetstream?.disk ?? -1,
      streams: -1,
      consumer: -1
    }

const account = async (
  operator: KeyPair,
  name: string,
  limits: AccountLimits | undefined,
  system: boolean
): Promise<MintedAccount> => {
  const key = createAccount()
  const claims: Partial<Account> = {
    limits: {
      conn: limits?.connections ?? -1,
      subs: limits?.subscriptions ?? -1,
      payload: limits?.payload ?? -1,
      data: -1,
      imports: -1,
      exports: -1,
      wildcards: true,
      leaf: -1,
      ...(system ? {} : jetstreamLimits(limits))
    }
  }
  return { name, key, claims, jwt: await encodeAccount(name, key, claims, { signer: operator }) }
}

/** An operator with a system account and the given accounts. */
export const make = async (
  accounts: ReadonlyArray<{ readonly name: string; readonly limits?: AccountLimits | undefined }>
): Promise<OperatorSetup & { readonly operatorKey: KeyPair }> => {
  const wrong = accountsProblem(accounts)
  if (wrong !== undefined) throw new Error(wrong)
  const operatorKey = createOperator()
  const system = await account(operatorKey, "SYS", undefined, true)
  const minted = await Promise.all(accounts.map((a) => account(operatorKey, a.name, a.limits, false)))
  const operatorJwt = await encodeOperator("effect-nats-test", operatorKey, {
    system_account: system.key.getPublicKey()
  })
  return { operatorKey, operatorJwt, system, accounts: minted }
}

/** The server config of the operator: its JWT, the system account, the preloaded accounts. */
export const configText = (setup: OperatorSetup): string =>
  [
    `operator: ${setup.operatorJwt}`,
    `system_account: ${setup.system.key.getPublicKey()}`,
    "resolver: MEMORY",
    "resolver_preload: {",
    ...[setup.system, ...setup.accounts].map((a) => `  ${a.key.getPublicKey()}: ${a.jwt}`),
    "}"
  ].join("\n")

const permission = (p: UserOptions["publish"]) =>
  p === undefined ? undefined : { allow: [...(p.allow ?? [])], deny: [...(p.deny ?? [])] }

const isPublicKey = (key: string): boolean => {
  try {
    fromPublic(key)
    return true
  } catch {
    return false
  }
}

/** What is wrong with a permission list (plain JavaScript can pass a string, which would spread to letters). */
const listProblem = (list: unknown, what: string): string | undefined => {
  if (list === undefined) return undefined
  if (!Array.isArray(list)) return `${what} must be an array of subjects`
  for (const [i, subject] of list.entries()) {
    const wrong = typeof subject === "string" ? validatePattern(subject) : "is not a string"
    if (wrong !== undefined) return `${what}[${i}] ${wrong}`
  }
  return undefined
}

const permissionProblem = (p: unknown, what: string): string | undefined => {
  if (p === undefined) return undefined
  if (typeof p !== "object" || p === null) return `${what} must be { allow?, deny? }`
  const { allow, deny } = p as { readonly allow?: unknown; readonly deny?: unknown }
  return listProblem(allow, `${what}.allow`) ?? listProblem(deny, `${what}.deny`)
}

const limitProblem = (n: unknown, what: string): string | undefined =>
  n === undefined || (Number.isSafeInteger(n) && (n as number) >= -1) ? undefined : `${what} must be an integer >= -1`

/** What is wrong with the options of a user, if anything. */
export const userProblem = (options: unknown): string | undefined => {
  if (typeof options !== "object" || options === null) return "the options must be an object"
  const o = options as Record<string, unknown>
  if (o.account !== undefined && typeof o.account !== "string") return "account must be a string"
  if (o.name !== undefined && (typeof o.name !== "string" || o.name.length > 256)) {
    return "name must be a string of at most 256 characters"
  }
  if (o.expires !== undefined && !(o.expires instanceof Date && Number.isFinite(o.expires.getTime()))) {
    return "expires must be a valid Date"
  }
  return permissionProblem(o.publish, "publish") ?? permissionProblem(o.subscribe, "subscribe") ??
    limitProblem(o.subscriptions, "subscriptions") ?? limitProblem(o.payload, "payload")
}

/** What is wrong with the accounts of an operator, if anything. */
export const accountsProblem = (accounts: unknown): string | undefined => {
  if (!Array.isArray(accounts) || accounts.length === 0) return "accounts must be a non-empty array"
  const names = new Set<string>()
  for (const [i, a] of accounts.entries()) {
    const name: unknown = (a as { readonly name?: unknown } | null)?.name
    if (typeof name !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(name)) {
      return `accounts[${i}].name must be 1 to 64 letters, digits, _ or -`
    }
    if (name === "SYS" || names.has(name)) return `accounts[${i}].name ${name} is taken`
    names.add(name)
  }
  return undefined
}

/** The creds file contents of a new user, and the user's public key. */
export const user = async (
  setup: OperatorSetup & { readonly operatorKey: KeyPair },
  options: UserOptions
): Promise<{ readonly creds: string; readonly publicKey: string }> => {
  const wrong = userProblem(options)
  if (wrong !== undefined) throw new Error(wrong)
  const known = setup.accounts.find((a) => a.name === (options.account ?? setup.accounts[0]?.name))
  const issuer = known?.key ?? createAccount() // an account the server does not know
  const key = createUser()
  const pub = permission(options.publish)
  const sub = permission(options.subscribe)
  const jwt = await encodeUser(options.name ?? "user", key, issuer, {
    ...(pub === undefined ? {} : { pub }),
    ...(sub === undefined ? {} : { sub }),
    subs: options.subscriptions ?? -1,
    payload: options.payload ?? -1,
    data: -1
  }, options.expires === undefined ? {} : { exp: Math.floor(options.expires.getTime() / 1000) })
  return { creds: new TextDecoder().decode(fmtCreds(jwt, key)), publicKey: key.getPublicKey() }
}

/** Re-signs the user's account with the user revoked (from now on). */
export const revoke = async (
  setup: OperatorSetup & { readonly operatorKey: KeyPair },
  accountName: string,
  userPublicKey: string
): Promise<void> => {
  const minted = setup.accounts.find((a) => a.name === accountName)
  if (minted === undefined) throw new Error(`no account ${String(accountName).slice(0, 64)}`)
  if (typeof userPublicKey !== "string" || !userPublicKey.startsWith("U") || !isPublicKey(userPublicKey)) {
    throw new Error("the user's public key is not a user NKey (U...)")
  }
  const revocations = { ...minted.claims.revocations, [userPublicKey]: Math.floor(Date.now() / 1000) + 1 }
  Object.assign(minted.claims, { revocations })
  minted.jwt = await encodeAccount(minted.name, minted.key, minted.claims, { signer: setup.operatorKey })
}
