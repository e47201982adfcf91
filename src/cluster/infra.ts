/**
 * The machines of a cluster that run no kubelet: the API server load balancer (haproxy, for more than
 * one control plane) and the image registry (Debian's docker-registry, the CNCF distribution registry).
 * They boot from the cluster's base image, which then holds their packages too; each machine masks the
 * services that are not its own, so a Kubernetes node runs no haproxy and the registry runs no containerd.
 */
import {connect} from 'node:net'

import type {RuntimeProvider} from '@kube-spawn/sdk'

import type {Cluster} from '../config/definition.js'
import type {ClusterContext, HostNode, HostStep} from '../context/index.js'
import {UserError} from '../errors.js'
import {kubectl} from '../kubernetes/api.js'
import {API_SERVER_PORT} from '../kubernetes/kubeadm-config.js'
import {renderYaml} from '../kubernetes/yaml.js'
import {type InfraRole, infraRoles, registryAddress} from '../node/names.js'
import type {NodeFile} from '../node/node-files.js'

/** What each infrastructure role needs from the image, by image family, and the service it runs. */
const ROLES: Record<InfraRole, {packages: Record<string, string[]>; service: string; what: string}> = {
  'load-balancer': {packages: {debian: ['haproxy']}, service: 'haproxy.service', what: 'control-planes > 1 needs haproxy'},
  registry: {packages: {debian: ['docker-registry']}, service: 'docker-registry.service', what: '[registry] needs docker-registry'},
}

export const REGISTRY_CONFIG = '/etc/docker/registry/config.yml'
export const REGISTRY_STORAGE = '/var/lib/docker-registry'
export const HAPROXY_CONFIG = '/etc/haproxy/haproxy.cfg'

/** Why the cluster's infrastructure machines cannot be made with this runtime and image, or undefined. */
export function infraRefusal(cluster: Cluster, runtime: RuntimeProvider, image: {name: string; family: string}): string | undefined {
  for (const role of infraRoles(cluster)) {
    if (!ROLES[role].packages[image.family])
      return `${ROLES[role].what} from the image's packages, and image ${image.name} (${image.family}) installs no packages: use image = "debian"`
  }
  if (cluster.registry?.enabled && !runtime.configuresRegistry)
    return `container runtime ${runtime.name} cannot be pointed at the cluster's registry (its plugin does not declare configuresRegistry)`
  return undefined
}

/** The runtime with the infrastructure machines' packages added to the image family's list (they share the base image). */
export function withInfraPackages(runtime: RuntimeProvider, cluster: Cluster, family: string): RuntimeProvider {
  const extra = infraRoles(cluster).flatMap((role) => ROLES[role].packages[family] ?? [])
  const own = runtime.packages[family]
  if (extra.length === 0 || !own) return runtime
  return {...runtime, packages: {...runtime.packages, [family]: {...own, names: [...new Set([...own.names, ...extra])]}}}
}

/** haproxy in front of every control plane's API server, checked by /healthz (anonymous in every release). */
export function renderHaproxyConfig(cluster: Cluster): string {
  const servers = cluster.machines
    .filter((m) => m.role === 'control-plane')
    .map((m) => `  server ${m.name} ${m.ip}:${API_SERVER_PORT} check check-ssl verify none`)
  return `# Written by kube-spawn for cluster ${cluster.clusterName}.
global
  log /dev/log local0
  # haproxy raises its file limit to about 2 × maxconn; a node without CAP_SYS_RESOURCE stays at 1024.
  maxconn 400

defaults
  mode tcp
  log global
  option dontlognull
  # A control plane that just went away: try another one at once, before the health check notices.
  retries 3
  option redispatch
  timeout connect 2s
  # Long enough for kubectl's watches and logs -f.
  timeout client 1h
  timeout server 1h

frontend kube-apiserver
  bind *:${API_SERVER_PORT}
  default_backend kube-apiservers

backend kube-apiservers
  option httpchk GET /healthz
  default-server inter 2s fall 2 rise 1
${servers.join('\n')}
`
}

/** The registry's configuration: storage in its machine (or the user's dir bound there), plain HTTP on the port. */
export function renderRegistryConfig(port: number): string {
  return renderYaml([
    {
      version: '0.1',
      log: {fields: {service: 'registry'}},
      storage: {filesystem: {rootdirectory: REGISTRY_STORAGE}, delete: {enabled: true}},
      http: {addr: `:${port}`, headers: {'X-Content-Type-Options': ['nosniff']}},
    },
  ])
}

/**
 * KEP-1755's ConfigMap, by which tools such as Tilt find the registry: the host pushes through
 * localhost:PORT, runtimes and pods reach the registry machine's address.
 */
export function registryHostingConfigMap(cluster: Cluster): string {
  const address = registryAddress(cluster)
  if (!address) throw new Error(`cluster ${cluster.clusterName} has no registry`)
  const hosting = renderYaml([
    {
      host: `localhost:${cluster.registry!.port}`,
      hostFromContainerRuntime: address,
      hostFromClusterNetwork: address,
      help: 'kube-spawn docs/ha-and-registry.md: push to localhost:PORT from the host, name images <hostFromContainerRuntime>/… in pods',
    },
  ])
  return renderYaml([
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {name: 'local-registry-hosting', namespace: 'kube-public'},
      data: {'localRegistryHosting.v1': hosting},
    },
  ])
}

const mask = (service: string): NodeFile => ({path: `/etc/systemd/system/${service}`, content: '', link: '/dev/null'})

/** A machine's role-specific files: masks for every service that is not its own, and its own service's config. */
export function roleFiles(ctx: ClusterContext, machine: {role: string}): NodeFile[] {
  const cluster = ctx.cluster
  const others = (Object.keys(ROLES) as InfraRole[]).filter((role) => role !== machine.role).map((role) => mask(ROLES[role].service))
  if (machine.role !== 'load-balancer' && machine.role !== 'registry') return others
  const own: NodeFile[] =
    machine.role === 'load-balancer'
      ? [{path: HAPROXY_CONFIG, content: renderHaproxyConfig(cluster)}]
      : [
          {path: REGISTRY_CONFIG, content: renderRegistryConfig(cluster.registry!.port)},
          // The user's directory is bound in owned by them; the package's own user could not write it.
          ...(cluster.registry!.dir
            ? [{path: '/etc/systemd/system/docker-registry.service.d/10-kube-spawn.conf', content: '[Service]\nUser=root\nGroup=root\n'}]
            : []),
        ]
  // An infrastructure machine runs no container runtime.
  return [...others, ...ctx.runtime.services.map((s) => mask(s)), ...own]
}

/** pre-boot: the registry's storage dir of the user's, bound into its machine. */
export const bindRegistryStorage: HostStep = {
  title: "Bind the registry's storage directory",
  skip: (ctx) =>
    !ctx.cluster.registry?.enabled
      ? 'the cluster has no registry'
      : ctx.cluster.registry.dir
        ? false
        : "the registry keeps its storage in its machine's own layer",
  task: async (ctx) => {
    registryMachine(ctx).addBindMount({src: ctx.cluster.registry!.dir!, dst: REGISTRY_STORAGE})
  },
}

function registryMachine(ctx: ClusterContext): HostNode {
  const machine = ctx.machines.find((m) => m.role === 'registry')
  if (!machine) throw new UserError(`cluster "${ctx.cluster.clusterName}" has no registry machine`, {hint: 'destroy and create it again'})
  return machine
}

/** post-boot: haproxy accepts connections on the load balancer, and the registry answers /v2/. */
export const waitForInfraMachines: HostStep = {
  title: 'Wait for the load balancer and the registry',
  skip: (ctx) => (infraRoles(ctx.cluster).length === 0 ? 'the cluster has neither a load balancer nor a registry' : false),
  task: async (ctx, task) => {
    const timeout = 60_000 * ctx.host.timeoutScale
    const lb = ctx.machines.find((m) => m.role === 'load-balancer')
    if (lb) {
      await ctx.waitFor(() => tcpAnswers(lb.ip, API_SERVER_PORT), {timeout, interval: 250, describe: `haproxy on ${lb.name}`})
      task.output = `${lb.name}: haproxy listens on ${lb.ip}:${API_SERVER_PORT}`
    }
    const address = registryAddress(ctx.cluster)
    if (address) {
      await ctx.waitFor(
        async () => (await fetch(`http://${address}/v2/`, {signal: AbortSignal.timeout(2000)}).catch(() => undefined))?.ok,
        {timeout, interval: 250, describe: `the registry at http://${address}/v2/`},
      )
      task.output = `registry answers at ${address}`
    }
  },
}

async function tcpAnswers(host: string, port: number): Promise<boolean | undefined> {
  return new Promise((resolve) => {
    const socket = connect({host, port, timeout: 1000})
    const done = (ok: boolean | undefined) => {
      socket.destroy()
      resolve(ok)
    }
    socket.once('connect', () => done(true))
    socket.once('error', () => done(undefined))
    socket.once('timeout', () => done(undefined))
  })
}

/** ready: the local-registry-hosting ConfigMap, on every start (apply is idempotent). */
export const publishRegistryHosting: HostStep = {
  title: 'Publish the registry in kube-public/local-registry-hosting',
  skip: (ctx) => (registryAddress(ctx.cluster) ? false : 'the cluster has no registry'),
  task: async (ctx, task) => {
    const result = await kubectl(ctx, ['apply', '-f', '-'], 20_000, registryHostingConfigMap(ctx.cluster))
    if (result.exitCode !== 0)
      throw new UserError(`kubectl apply of the local-registry-hosting ConfigMap failed: ${result.stderr.trim().split('\n')[0]}`, {
        hint: 'see kube-spawn status; the registry itself works without it',
      })
    task.title = `Published the registry ${registryAddress(ctx.cluster)} in kube-public/local-registry-hosting`
  },
}
