/**
 * The cluster's API: reads and watches over one HTTPS connection with admin.conf's client certificate
 * (a kubectl process a second costs a 2-core host more than the answers are worth); kubectl for the rest.
 */
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

import type {StageContext} from '@kube-spawn/sdk'
import {Agent, request} from 'undici'
import {parse as parseYaml} from 'yaml'

import {run} from '../util/run.js'
import {WaitTimeout} from '../util/wait.js'
import {artifacts} from './binaries.js'

/** kubeadm's admin.conf, copied into the cluster directory after init. */
export const ADMIN_CONF = 'admin.conf'

export interface NodeObject extends ApiObject {
  spec: {podCIDR?: string; podCIDRs?: string[]}
  status: {conditions?: Array<{type: string; status: string; lastHeartbeatTime?: string; reason?: string; message?: string}>}
}

/** kubectl with the cluster's admin.conf; `input` goes to its stdin (for apply -f -). */
export async function kubectl(ctx: StageContext, args: string[], timeoutMs = 20_000, input?: string) {
  return run(
    [
      artifacts(ctx).kubectl,
      `--kubeconfig=${join(ctx.clusterDir, ADMIN_CONF)}`,
      `--request-timeout=${Math.ceil(timeoutMs / 1000)}s`,
      ...args,
    ],
    {
      timeoutMs: timeoutMs + 5000,
      allowFailure: true,
      ...(input === undefined ? {} : {input}),
    },
  )
}

interface Kubeconfig {
  'current-context'?: string
  contexts?: Array<{name: string; context: {cluster: string; user: string}}>
  clusters?: Array<{name: string; cluster: {server: string; 'certificate-authority-data'?: string}}>
  users?: Array<{name: string; user: {'client-certificate-data'?: string; 'client-key-data'?: string}}>
}

/** The server and credentials of a kubeconfig's current context (kubeadm's admin.conf embeds them all). */
export function kubeconfigCredentials(text: string): {server: string; ca: string; cert: string; key: string} {
  const config = parseYaml(text) as Kubeconfig
  const context = config.contexts?.find((c) => c.name === config['current-context'])?.context
  const cluster = config.clusters?.find((c) => c.name === context?.cluster)?.cluster
  const user = config.users?.find((u) => u.name === context?.user)?.user
  const decode = (data: string | undefined, what: string) => {
    if (!data) throw new Error(`the kubeconfig's current context has no embedded ${what}`)
    return Buffer.from(data, 'base64').toString('utf8')
  }
  if (!cluster?.server) throw new Error("the kubeconfig's current context names no server")
  return {
    server: cluster.server,
    ca: decode(cluster['certificate-authority-data'], 'certificate authority'),
    cert: decode(user?.['client-certificate-data'], 'client certificate'),
    key: decode(user?.['client-key-data'], 'client key'),
  }
}

/** A watch event of the API (one JSON object a line). ERROR carries a Status, such as 410 Gone for an expired version. */
interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR'
  object: T
}

class ApiUnavailable extends Error {}

/** A refused or broken connection (undici's errors carry UND_ERR_ codes), or an error status. */
const unavailable = (error: unknown) =>
  error instanceof ApiUnavailable || String((error as {code?: unknown}).code ?? '').startsWith('UND_ERR')

/** An object of the API, as far as lists and watches need it. */
export interface ApiObject {
  metadata: {name: string; resourceVersion?: string}
}

/** One connection to the API server of admin.conf. */
class ApiConnection {
  private readonly agent: Agent

  private constructor(
    private readonly credentials: ReturnType<typeof kubeconfigCredentials>,
    /** The host's timeoutScale: a slow host (an emulated VM) answers later. */
    private readonly scale: number,
  ) {
    const {ca, cert, key} = credentials
    this.agent = new Agent({connect: {ca, cert, key, timeout: 5000}})
  }

  static async open(ctx: StageContext): Promise<ApiConnection> {
    return new ApiConnection(kubeconfigCredentials(await readFile(join(ctx.clusterDir, ADMIN_CONF), 'utf8')), ctx.host.timeoutScale)
  }

  /** The response of a request with status 200; ApiUnavailable while the server does not answer or answers otherwise. */
  private async send(path: string, signal: AbortSignal, options: {bodyTimeout?: number; patch?: object} = {}) {
    const response = await request(new URL(path, this.credentials.server), {
      dispatcher: this.agent,
      signal,
      headersTimeout: 10_000 * this.scale,
      bodyTimeout: (options.bodyTimeout ?? 20_000) * this.scale,
      ...(options.patch && {
        method: 'PATCH' as const,
        headers: {'content-type': 'application/strategic-merge-patch+json'},
        body: JSON.stringify(options.patch),
      }),
    }).catch((error: unknown) => {
      if (signal.aborted) throw error
      throw new ApiUnavailable(String(error))
    })
    if (response.statusCode !== 200) {
      const text = await response.body.text().catch(() => '')
      throw new ApiUnavailable(`${options.patch ? 'PATCH' : 'GET'} ${path}: HTTP ${response.statusCode} ${text.slice(0, 300)}`)
    }
    return response.body
  }

  async list<T>(path: string, signal: AbortSignal): Promise<{items: T[]; resourceVersion: string}> {
    const body = (await (await this.send(path, signal)).json()) as {items: T[]; metadata: {resourceVersion: string}}
    return {items: body.items, resourceVersion: body.metadata.resourceVersion}
  }

  /** The events of a watch from resourceVersion, until the server ends it (after about timeoutSeconds). */
  async *watch<T>(path: string, resourceVersion: string, signal: AbortSignal): AsyncGenerator<WatchEvent<T>> {
    const body = await this.send(`${path}?watch=1&allowWatchBookmarks=true&timeoutSeconds=60&resourceVersion=${resourceVersion}`, signal, {
      bodyTimeout: 90_000,
    })
    let pending = ''
    for await (const chunk of body) {
      pending += (chunk as Buffer).toString('utf8')
      const lines = pending.split('\n')
      pending = lines.pop()!
      for (const line of lines) if (line.trim()) yield JSON.parse(line) as WatchEvent<T>
    }
  }

  /** A strategic merge patch of one object; ApiUnavailable with the server's message when refused. */
  async patch(path: string, patch: object, signal: AbortSignal): Promise<void> {
    await (await this.send(path, signal, {patch})).dump()
  }

  close(): Promise<void> {
    return this.agent.close()
  }
}

export const NODES = '/api/v1/nodes'
export const KUBE_SYSTEM_PODS = '/api/v1/namespaces/kube-system/pods'
export const DEFAULT_SERVICE_ACCOUNTS = '/api/v1/namespaces/default/serviceaccounts'

/**
 * Runs `body` on a fresh connection, and again a second later while the API server does not answer (it
 * restarts with its node, or is too busy to answer in time), until `signal` aborts. At the deadline the
 * last refusal is thrown, which says more than the abort; an interrupt (ctx.signal) throws its reason.
 */
async function askWhileUnavailable<T>(ctx: StageContext, signal: AbortSignal, body: (api: ApiConnection) => Promise<T>): Promise<T> {
  for (;;) {
    signal.throwIfAborted()
    let api: ApiConnection | undefined
    try {
      api = await ApiConnection.open(ctx)
      return await body(api)
    } catch (error) {
      if (signal.aborted || !unavailable(error)) throw error
      await sleep(1000, undefined, {signal}).catch(() => {
        throw ctx.signal?.aborted ? ctx.signal.reason : error
      })
    } finally {
      await api?.close()
    }
  }
}

/**
 * Records each node's pod range where its Node object has none yet (the API refuses to change a pod CIDR
 * once set); nodes not in `cidrs` are left alone.
 */
export async function recordNodePodCidrs(ctx: StageContext, cidrs: Map<string, string>): Promise<void> {
  // Right after up the API server is busiest (the controllers start): a request it does not answer in time is asked again.
  const deadline = AbortSignal.timeout(60_000 * ctx.host.timeoutScale)
  const signal = ctx.signal ? AbortSignal.any([ctx.signal, deadline]) : deadline
  await askWhileUnavailable(ctx, signal, async (api) => {
    const {items} = await api.list<NodeObject>(NODES, signal)
    const unrecorded = items.filter((n) => !n.spec.podCIDR && cidrs.has(n.metadata.name))
    await Promise.all(
      unrecorded.map((n) => {
        const cidr = cidrs.get(n.metadata.name)!
        return api.patch(`${NODES}/${encodeURIComponent(n.metadata.name)}`, {spec: {podCIDR: cidr, podCIDRs: [cidr]}}, signal)
      }),
    )
  })
}

export interface WatchOptions<T> {
  /** Give up after this many milliseconds (WaitTimeout). */
  timeout: number
  /** What is awaited, for the WaitTimeout. */
  describe: string
  /** Told the objects at every change. */
  onChange?: (objects: T[]) => void
}

/**
 * Watches the objects of a collection (NODES, KUBE_SYSTEM_PODS, DEFAULT_SERVICE_ACCOUNTS) until `done` holds of them, and returns
 * them: a list, then a watch from its version, so a change is seen when it happens. While the API server
 * does not answer (it restarts with its node), it asks again every second. A timeout throws WaitTimeout;
 * ctx.signal's abort, its reason.
 */
export async function watchUntil<T extends ApiObject>(
  ctx: StageContext,
  path: string,
  done: (objects: T[]) => boolean,
  {timeout, describe, onChange}: WatchOptions<T>,
): Promise<T[]> {
  const timer = AbortSignal.timeout(timeout)
  const signal = ctx.signal ? AbortSignal.any([ctx.signal, timer]) : timer
  const objects = new Map<string, T>()
  const changed = () => {
    const current = [...objects.values()]
    onChange?.(current)
    return done(current)
  }
  try {
    return await askWhileUnavailable(ctx, signal, async (api) => {
      // A watch that ends (its version expired, or the server closed it) lists again.
      for (;;) {
        const listed = await api.list<T>(path, signal)
        objects.clear()
        for (const object of listed.items) objects.set(object.metadata.name, object)
        if (changed()) return [...objects.values()]
        let version = listed.resourceVersion
        for await (const event of api.watch<T>(path, version, signal)) {
          if (event.type === 'ERROR') break // the version expired: list again
          if (event.type === 'BOOKMARK') continue
          version = event.object.metadata.resourceVersion ?? version
          if (event.type === 'DELETED') objects.delete(event.object.metadata.name)
          else objects.set(event.object.metadata.name, event.object)
          if (changed()) return [...objects.values()]
        }
      }
    })
  } catch (error) {
    if (timer.aborted && !ctx.signal?.aborted) throw new WaitTimeout(describe, timeout)
    throw error
  }
}
