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

export interface NodeObject {
  metadata: {name: string}
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

/** One connection to the API server of admin.conf. */
class ApiConnection {
  private readonly agent: Agent

  constructor(private readonly credentials: ReturnType<typeof kubeconfigCredentials>) {
    const {ca, cert, key} = credentials
    this.agent = new Agent({connect: {ca, cert, key, timeout: 5000}})
  }

  static async open(ctx: StageContext): Promise<ApiConnection> {
    return new ApiConnection(kubeconfigCredentials(await readFile(join(ctx.clusterDir, ADMIN_CONF), 'utf8')))
  }

  /** The response body of a GET; ApiUnavailable while the server does not answer or answers with an error. */
  private async get(path: string, signal: AbortSignal, bodyTimeout: number) {
    const response = await request(new URL(path, this.credentials.server), {
      dispatcher: this.agent,
      signal,
      headersTimeout: 10_000,
      bodyTimeout,
    }).catch((error: unknown) => {
      if (signal.aborted) throw error
      throw new ApiUnavailable(String(error))
    })
    if (response.statusCode !== 200) {
      await response.body.dump()
      throw new ApiUnavailable(`GET ${path}: HTTP ${response.statusCode}`)
    }
    return response.body
  }

  async list<T>(path: string, signal: AbortSignal): Promise<{items: T[]; resourceVersion: string}> {
    const body = (await (await this.get(path, signal, 20_000)).json()) as {items: T[]; metadata: {resourceVersion: string}}
    return {items: body.items, resourceVersion: body.metadata.resourceVersion}
  }

  /** The events of a watch from resourceVersion, until the server ends it (after about timeoutSeconds). */
  async *watch<T>(path: string, resourceVersion: string, signal: AbortSignal): AsyncGenerator<WatchEvent<T>> {
    const body = await this.get(
      `${path}?watch=1&allowWatchBookmarks=true&timeoutSeconds=60&resourceVersion=${resourceVersion}`,
      signal,
      90_000,
    )
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
    const response = await request(new URL(path, this.credentials.server), {
      dispatcher: this.agent,
      method: 'PATCH',
      headers: {'content-type': 'application/strategic-merge-patch+json'},
      body: JSON.stringify(patch),
      signal,
    }).catch((error: unknown) => {
      if (signal.aborted) throw error
      throw new ApiUnavailable(String(error))
    })
    const text = await response.body.text()
    if (response.statusCode !== 200) throw new ApiUnavailable(`PATCH ${path}: HTTP ${response.statusCode} ${text.slice(0, 300)}`)
  }

  close(): Promise<void> {
    return this.agent.close()
  }
}

/** The nodes, or undefined while the API server does not answer. */
export async function getNodes(ctx: StageContext): Promise<NodeObject[] | undefined> {
  const api = await ApiConnection.open(ctx)
  try {
    return (await api.list<NodeObject>('/api/v1/nodes', AbortSignal.timeout(20_000))).items
  } catch (error) {
    if (unavailable(error)) return undefined
    throw error
  } finally {
    await api.close()
  }
}

/** Sets fields of nodes' specs that are still empty (the API refuses to change a pod CIDR once set). */
export async function patchNodeSpecs(ctx: StageContext, specs: Map<string, NodeObject['spec']>): Promise<void> {
  const api = await ApiConnection.open(ctx)
  try {
    await Promise.all(
      [...specs].map(([name, spec]) => api.patch(`/api/v1/nodes/${encodeURIComponent(name)}`, {spec}, AbortSignal.timeout(20_000))),
    )
  } finally {
    await api.close()
  }
}

export interface WatchNodesOptions {
  /** Give up after this many milliseconds (WaitTimeout). */
  timeout: number
  /** What is awaited, for the WaitTimeout. */
  describe: string
  /** Told the nodes at every change. */
  onChange?: (nodes: NodeObject[]) => void
}

/**
 * Watches the nodes until `done` holds of them, and returns them: a list, then a watch from its version,
 * so a change is seen when it happens. While the API server does not answer (it restarts with its
 * node), it asks again every second. A timeout throws WaitTimeout; ctx.signal's abort, its reason.
 */
export async function watchNodesUntil(
  ctx: StageContext,
  done: (nodes: NodeObject[]) => boolean,
  {timeout, describe, onChange}: WatchNodesOptions,
): Promise<NodeObject[]> {
  const timer = AbortSignal.timeout(timeout)
  const signal = ctx.signal ? AbortSignal.any([ctx.signal, timer]) : timer
  const nodes = new Map<string, NodeObject>()
  const changed = () => {
    const current = [...nodes.values()]
    onChange?.(current)
    return done(current)
  }
  try {
    for (;;) {
      signal.throwIfAborted()
      let api: ApiConnection | undefined
      try {
        api = await ApiConnection.open(ctx)
        const listed = await api.list<NodeObject>('/api/v1/nodes', signal)
        nodes.clear()
        for (const node of listed.items) nodes.set(node.metadata.name, node)
        if (changed()) return [...nodes.values()]
        let version = listed.resourceVersion
        for await (const event of api.watch<NodeObject>('/api/v1/nodes', version, signal)) {
          if (event.type === 'ERROR') break // the version expired: list again
          if (event.type === 'BOOKMARK') continue
          version = (event.object as {metadata: {resourceVersion?: string}}).metadata.resourceVersion ?? version
          if (event.type === 'DELETED') nodes.delete(event.object.metadata.name)
          else nodes.set(event.object.metadata.name, event.object)
          if (changed()) return [...nodes.values()]
        }
      } catch (error) {
        // The server does not answer, or went away mid-watch (it restarts with its node): ask again in a second.
        if (signal.aborted || !unavailable(error)) throw error
        await sleep(1000, undefined, {signal})
      } finally {
        await api?.close()
      }
    }
  } catch (error) {
    if (timer.aborted && !ctx.signal?.aborted) throw new WaitTimeout(describe, timeout)
    throw error
  }
}
