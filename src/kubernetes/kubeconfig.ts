/**
 * A cluster's admin credentials in the user's kubeconfig, as the cluster, user and context
 * `kube-spawn-<cluster>`.
 *
 * Why kubectl and not a YAML parser of our own: the file being edited is the user's, written by any
 * number of tools (kubectl, cloud CLIs, kind, minikube) in any valid YAML: flow style, anchors,
 * comments, odd quoting, relative certificate paths. A small parser would be fine for kubeadm's
 * admin.conf but would sooner or later mangle someone's config. kubectl is the reference reader and
 * writer of that format, and we have the cluster's own kubectl in the cache anyway. So all editing
 * is done by `kubectl config ...` on a private temporary copy of the kubeconfig; the result replaces
 * the original atomically, under the same <kubeconfig>.lock file kubectl itself takes when writing.
 * kubectl rewrites the whole file, like any `kubectl config set-*` the user runs (comments go). The
 * file is only read in-process, to leave it alone when it already holds what a merge would write (every
 * `start` after the first: nine kubectl runs, a second, saved).
 *
 * Credentials never appear on a command line: they pass through files in a 0700 temporary directory.
 *
 * kubeadm's own admin.conf is another matter: kube-spawn reads it and rewrites its server address
 * (see withServer) with the `yaml` package, which keeps everything else as kubeadm wrote it.
 *
 * Under sudo, "the user's kubeconfig" is the invoking user's, not root's (see kubeconfigPath), and
 * it stays theirs: the file and any directory created for it are chowned to SUDO_UID:SUDO_GID.
 */
import {spawnSync} from 'node:child_process'
import {constants, readFileSync} from 'node:fs'
import {access, chown, copyFile, mkdir, mkdtemp, open, readFile, realpath, rm, stat, writeFile} from 'node:fs/promises'
import {homedir, tmpdir} from 'node:os'
import {delimiter, dirname, join, resolve} from 'node:path'
import {isDeepStrictEqual} from 'node:util'
import {parseDocument} from 'yaml'

import {validateClusterName} from '../config/definition.js'
import {UserError} from '../errors.js'
import {WaitTimeout, waitFor} from '../util/wait.js'
import {writeFileAtomic} from '../util/fs.js'
import {run} from '../util/run.js'
import {kubeconfigCredentials} from './api.js'

export interface KubeconfigOptions {
  /** The kubeconfig to edit; defaults to kubeconfigPath(env). */
  path?: string
  /** Where KUBECONFIG, HOME and sudo's SUDO_* are read from (default process.env). */
  env?: Record<string, string | undefined>
  /** How long to wait for another writer's lock (default 5 s). */
  lockTimeoutMs?: number
}

export interface MergeKubeconfigOptions extends KubeconfigOptions {
  /** The cluster's name in kube-spawn. */
  cluster: string
  /** The text of the cluster's /etc/kubernetes/admin.conf. */
  adminConf: string
  /** The kubectl binary to edit with (the cluster's own, from the cache). */
  kubectl: string
  /** Make the new context the current one (default true, as kind and minikube do). */
  useContext?: boolean
}

/** The name of the cluster, user and context kube-spawn writes for a cluster. */
export function contextName(cluster: string): string {
  return `kube-spawn-${cluster}`
}

/** The user who ran `sudo kube-spawn`, by sudo's SUDO_USER, SUDO_UID and SUDO_GID. */
export interface SudoUser {
  name: string
  uid: number
  gid: number
}

/** Who ran kube-spawn through sudo, when it runs as root with sudo's variables set; else undefined. */
export function sudoUser(env: Record<string, string | undefined> = process.env, processUid = process.getuid?.()): SudoUser | undefined {
  const id = (value: string | undefined) => (value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined)
  const uid = id(env.SUDO_UID)
  const gid = id(env.SUDO_GID)
  if (processUid !== 0 || !env.SUDO_USER || uid === undefined || gid === undefined) return undefined
  return {name: env.SUDO_USER, uid, gid}
}

/**
 * A user's home directory from the passwd database: `getent passwd`, so that users from LDAP or sssd
 * count too, or /etc/passwd where there is no getent.
 */
export function passwdHome(uid: number): string | undefined {
  const getent = spawnSync('getent', ['passwd', String(uid)], {encoding: 'utf8'})
  const entry = getent.error
    ? readFileSync('/etc/passwd', 'utf8')
        .split('\n')
        .find((line) => line.split(':')[2] === String(uid))
    : getent.stdout.split('\n')[0]
  return entry?.split(':')[5] || undefined
}

export interface KubeconfigPathOptions {
  /** The uid kube-spawn runs as (default: the process's). */
  processUid?: number
  /** Looks up a home directory by uid (default: passwdHome). */
  homeOf?: (uid: number) => string | undefined
}

/**
 * The kubeconfig kube-spawn writes: the first path in $KUBECONFIG, else ~/.kube/config. Under sudo
 * that is the invoking user's ~/.kube/config, with the home directory from the passwd database:
 * sudo may have set HOME to root's.
 */
export function kubeconfigPath(
  env: Record<string, string | undefined> = process.env,
  {processUid = process.getuid?.(), homeOf = passwdHome}: KubeconfigPathOptions = {},
): string {
  const first = (env.KUBECONFIG ?? '').split(delimiter).find((p) => p !== '')
  if (first) return first
  const sudo = sudoUser(env, processUid)
  if (!sudo) return join(env.HOME || homedir(), '.kube', 'config')
  const home = homeOf(sudo.uid)
  if (!home) {
    throw new UserError(`cannot find the home directory of ${sudo.name} (uid ${sudo.uid}), who ran kube-spawn through sudo`, {
      hint: 'set KUBECONFIG to the kubeconfig kube-spawn should write',
    })
  }
  return join(home, '.kube', 'config')
}

/** The current context of a kubeconfig and its cluster's server (kubeadm's admin.conf has one of each). */
export function describeKubeconfig(text: string, source: string): {context?: string; server: string} {
  const {context, server} = locateServer(text, source)
  return {context, server}
}

/** The kubeconfig with its current context's cluster pointing at `server`, and everything else as it was. */
export function withServer(text: string, server: string, source: string): string {
  const {document, clusterIndex} = locateServer(text, source)
  document.setIn(['clusters', clusterIndex, 'cluster', 'server'], server)
  // kubeadm's (and kubectl's) layout: sequences not indented under their key, long lines not folded.
  return document.toString({lineWidth: 0, indentSeq: false})
}

const NOT_ADMIN_CONF_HINT = "it should be kubeadm's admin.conf, which is also in the control plane node at /etc/kubernetes/admin.conf"

function locateServer(text: string, source: string) {
  const document = parseDocument(text)
  if (document.errors.length > 0) {
    throw new UserError(`${source} is not valid YAML: ${document.errors[0].message.split('\n')[0].replace(/:$/, '')}`, {
      hint: NOT_ADMIN_CONF_HINT,
    })
  }
  const config = (document.toJS() ?? {}) as KubeconfigJson
  const contexts = Array.isArray(config.contexts) ? config.contexts : []
  const clusters = Array.isArray(config.clusters) ? config.clusters : []
  const context = contexts.find((c) => c.name === config['current-context']) ?? contexts[0]
  const named = clusters.findIndex((c) => c.name === context?.context?.cluster)
  const clusterIndex = named >= 0 ? named : clusters.length === 1 ? 0 : -1
  const server = clusters[clusterIndex]?.cluster?.server as unknown
  if (typeof server !== 'string' || server === '') {
    throw new UserError(`${source} names no API server for its current context`, {
      hint: NOT_ADMIN_CONF_HINT,
    })
  }
  return {document, clusterIndex, context: context?.name, server}
}

/** Adds (or replaces) the cluster's entries in the user's kubeconfig; returns the file and context name. */
export async function mergeKubeconfig(options: MergeKubeconfigOptions): Promise<{path: string; context: string}> {
  validateClusterName(options.cluster)
  const name = contextName(options.cluster)
  const path = options.path ?? kubeconfigPath(options.env)
  const sudo = sudoUser(options.env)
  const kubectl = (...args: string[]) => run([options.kubectl, ...args], {timeoutMs: 30_000})

  const credentials = adminCredentials(options.adminConf, options.cluster)
  const useContext = options.useContext ?? true

  return withTempDir(async (tmp) => {
    await makeDirectory(dirname(path), sudo)
    await withFileLock(path, options.lockTimeoutMs, async () => {
      // A start of a running or stopped cluster: admin.conf is the same, so is the file (no kubectl runs, 1 s).
      const current = await readFile(path, 'utf8').catch(() => undefined)
      if (current !== undefined && holdsEntries(current, name, credentials, useContext)) return
      const files = await credentialFiles(credentials, tmp)
      const work = await copyForEditing(path, tmp)
      await deleteEntries(options.kubectl, work, name, {unsetCurrent: false})
      await kubectl(
        'config',
        `--kubeconfig=${work}`,
        'set-cluster',
        name,
        `--server=${credentials.server}`,
        `--certificate-authority=${files.ca}`,
        '--embed-certs=true',
      )
      await kubectl(
        'config',
        `--kubeconfig=${work}`,
        'set-credentials',
        name,
        `--client-certificate=${files.cert}`,
        `--client-key=${files.key}`,
        '--embed-certs=true',
      )
      await kubectl('config', `--kubeconfig=${work}`, 'set-context', name, `--cluster=${name}`, `--user=${name}`)
      if (useContext) await kubectl('config', `--kubeconfig=${work}`, 'use-context', name)
      await replaceFile(path, await readFile(work), sudo)
    })
    return {path, context: name}
  })
}

/**
 * Removes the cluster's cluster, user and context from the user's kubeconfig (and the current
 * context when it was this one). A no-op, needing no kubectl, when the file does not mention them.
 * Returns whether anything was removed. Without `kubectl`, the one on PATH is used.
 */
export async function removeKubeconfigContext(cluster: string, kubectl?: string, options: KubeconfigOptions = {}): Promise<boolean> {
  const name = contextName(cluster)
  const path = options.path ?? kubeconfigPath(options.env)
  const text = await readFile(path, 'utf8').catch(() => undefined)
  if (text === undefined || !text.includes(name)) return false
  const binary = kubectl ?? (await findOnPath('kubectl', options.env))
  if (!binary) {
    throw new UserError(`cannot remove context ${name} from ${path}: no kubectl found`, {
      hint: `remove it with "kubectl config delete-context ${name}; kubectl config delete-cluster ${name}; kubectl config delete-user ${name}"`,
    })
  }
  return withTempDir((tmp) =>
    withFileLock(path, options.lockTimeoutMs, async () => {
      const work = await copyForEditing(path, tmp)
      const removed = await deleteEntries(binary, work, name, {unsetCurrent: true})
      if (removed) await replaceFile(path, await readFile(work), sudoUser(options.env))
      return removed
    }),
  )
}

/** The parts of `kubectl config view -o json` kube-spawn reads. */
interface KubeconfigJson {
  'current-context'?: string
  clusters?: Array<{name: string; cluster?: Record<string, string>}>
  users?: Array<{name: string; user?: Record<string, string>}>
  contexts?: Array<{name: string; context?: {cluster?: string; user?: string}}>
}

async function view(kubectl: string, file: string): Promise<KubeconfigJson> {
  const {stdout} = await run([kubectl, 'config', `--kubeconfig=${file}`, 'view', '--raw', '-o', 'json'], {timeoutMs: 30_000})
  try {
    return JSON.parse(stdout) as KubeconfigJson
  } catch {
    throw new UserError(`kubectl config view printed no JSON for ${file}`, {hint: `check ${kubectl}`})
  }
}

/** admin.conf's server and certificates (PEM), as kubeconfigCredentials reads them. */
export type AdminCredentials = ReturnType<typeof kubeconfigCredentials>

/** The server and certificates of admin.conf's current context (kubeadm writes exactly one), read in-process. */
function adminCredentials(adminConf: string, cluster: string): AdminCredentials {
  try {
    return kubeconfigCredentials(adminConf)
  } catch {
    throw new UserError(`the admin.conf of cluster ${cluster} lacks the server address or embedded certificates`, {
      hint: 'it should be the file kubeadm init wrote; re-run "kube-spawn start"',
    })
  }
}

/** The certificates as files in the temporary directory, for kubectl's --embed-certs (never on a command line). */
async function credentialFiles(credentials: AdminCredentials, tmp: string): Promise<{ca: string; cert: string; key: string}> {
  const files = {ca: join(tmp, 'ca.crt'), cert: join(tmp, 'client.crt'), key: join(tmp, 'client.key')}
  for (const key of ['ca', 'cert', 'key'] as const) await writeFile(files[key], credentials[key], {mode: 0o600})
  return files
}

/**
 * Whether the kubeconfig already holds exactly the entries a merge would write, once each (and, when asked,
 * the context is the current one). Only read; a file this cannot parse is left to kubectl.
 */
export function holdsEntries(text: string, name: string, credentials: AdminCredentials, useContext: boolean): boolean {
  const document = parseDocument(text)
  if (document.errors.length > 0) return false
  const config = (document.toJS() ?? {}) as KubeconfigJson
  const only = <T extends {name: string}>(list: T[] | undefined) => {
    const found = (Array.isArray(list) ? list : []).filter((entry) => entry?.name === name)
    return found.length === 1 ? found[0] : undefined
  }
  // kubectl --embed-certs stores each file's bytes in base64.
  const data = (pem: string) => Buffer.from(pem).toString('base64')
  return (
    isDeepStrictEqual(only(config.clusters)?.cluster, {server: credentials.server, 'certificate-authority-data': data(credentials.ca)}) &&
    isDeepStrictEqual(only(config.users)?.user, {
      'client-certificate-data': data(credentials.cert),
      'client-key-data': data(credentials.key),
    }) &&
    isDeepStrictEqual(only(config.contexts)?.context, {cluster: name, user: name}) &&
    (!useContext || config['current-context'] === name)
  )
}

/** Deletes the named context, cluster and user from `file` where present; returns whether any was. */
async function deleteEntries(kubectl: string, file: string, name: string, {unsetCurrent}: {unsetCurrent: boolean}): Promise<boolean> {
  const config = await view(kubectl, file)
  const has = (list?: Array<{name: string}>) => list?.some((e) => e.name === name) ?? false
  const steps: string[][] = []
  if (has(config.contexts)) steps.push(['delete-context', name])
  if (has(config.clusters)) steps.push(['delete-cluster', name])
  if (has(config.users)) steps.push(['delete-user', name])
  if (unsetCurrent && config['current-context'] === name) steps.push(['unset', 'current-context'])
  for (const step of steps) await run([kubectl, 'config', `--kubeconfig=${file}`, ...step], {timeoutMs: 30_000})
  return steps.length > 0
}

/** A private copy of the kubeconfig (or none, when it does not exist yet) for kubectl to edit. */
async function copyForEditing(path: string, tmp: string): Promise<string> {
  const work = join(tmp, 'config')
  await rm(work, {force: true})
  try {
    await copyFile(path, work)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
  return work
}

/**
 * Writes the kubeconfig atomically, 0600; a symlinked kubeconfig is replaced at its target. The new
 * file belongs to the sudo user, if any, else to the old file's owner: the rename must not hand a
 * user's file to root.
 */
async function replaceFile(path: string, data: Uint8Array, sudo: SudoUser | undefined): Promise<void> {
  const target = await realpath(path).catch(() => path)
  const previous = await stat(target).catch(() => undefined)
  await writeFileAtomic(target, data, 0o600)
  const owner = sudo ?? previous
  if (!owner) return
  const written = await stat(target)
  if (written.uid !== owner.uid || written.gid !== owner.gid) await chown(target, owner.uid, owner.gid)
}

/** Creates the kubeconfig's directory (0700) where missing; under sudo what it creates is the sudo user's. */
async function makeDirectory(dir: string, sudo: SudoUser | undefined): Promise<void> {
  const first = await mkdir(dir, {recursive: true, mode: 0o700})
  if (!first || !sudo) return
  // mkdir names the topmost directory it made; it and those below it, down to `dir`, are new.
  for (let created = resolve(dir); ; created = dirname(created)) {
    await chown(created, sudo.uid, sudo.gid)
    if (created === resolve(first) || created === dirname(created)) break
  }
}

/**
 * Runs `fn` holding <path>.lock, created with O_EXCL as kubectl (client-go) does, so neither
 * overwrites the other's changes. Waits up to `timeoutMs` for another holder.
 */
export async function withFileLock<T>(path: string, timeoutMs = 5000, fn: () => Promise<T>): Promise<T> {
  const lock = `${path}.lock`
  const take = async () => {
    try {
      const handle = await open(lock, 'wx', 0o600)
      await handle.writeFile(`${process.pid}\n`).finally(() => handle.close())
      return true
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      return undefined
    }
  }
  await waitFor(take, {timeout: timeoutMs, interval: 100, describe: `${lock} to go away`}).catch((error: unknown) => {
    if (!(error instanceof WaitTimeout)) throw error
    throw new UserError(`${path} is locked: ${lock} exists`, {
      hint: 'another kubectl or kube-spawn is writing it; if none is running, remove the lock file',
    })
  })
  try {
    return await fn()
  } finally {
    await rm(lock, {force: true})
  }
}

async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'kube-spawn-kubeconfig-'))
  try {
    return await fn(dir)
  } finally {
    await rm(dir, {recursive: true, force: true})
  }
}

async function findOnPath(command: string, env: Record<string, string | undefined> = process.env): Promise<string | undefined> {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue
    const candidate = join(dir, command)
    if (
      await access(candidate, constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return candidate
  }
  return undefined
}
