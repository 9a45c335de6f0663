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
import { createAccount, createOperator, createUser } from "@nats-io/nkeys"
import type { AccountLimits, UserOptions } from "../layers/NatsServer.ts"

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

/** The creds file contents of a new user, and the user's public key. */
export const user = async (
  setup: OperatorSetup & { readonly operatorKey: KeyPair },
  options: UserOptions
): Promise<{ readonly creds: string; readonly publicKey: string }> => {
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
  if (minted === undefined) throw new Error(`no account ${accountName}`)
  const revocations = { ...minted.claims.revocations, [userPublicKey]: Math.floor(Date.now() / 1000) + 1 }
  Object.assign(minted.claims, { revocations })
  minted.jwt = await encodeAccount(minted.name, minted.key, minted.claims, { signer: setup.operatorKey })
}
