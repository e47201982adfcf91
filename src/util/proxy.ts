/**
 * Proxies from the environment. Node's fetch ignores HTTP_PROXY and its kin, so kube-spawn puts a
 * proxy-aware dispatcher under it (useEnvProxy); the nodes' container runtimes get the same proxies,
 * with the cluster's own ranges added to NO_PROXY (runtimeProxyEnvironment).
 *
 * As in curl and undici's EnvHttpProxyAgent, the lower-case name wins over the upper-case one; an empty
 * value is ignored. https:// URLs use https_proxy, else the http proxy, as undici does.
 */
import {UserError} from '../errors.js'

type Env = Record<string, string | undefined>

export interface ProxySettings {
  /** The proxy for http:// URLs, as a URL. */
  http?: string
  /** The proxy for https:// URLs, as a URL. */
  https?: string
  /** Hosts, domains (suffixes), and, for Go programs only, CIDRs; comma-separated. */
  noProxy?: string
}

/** Loopback is never proxied: a proxy elsewhere cannot reach this host's loopback (Go programs do the same). */
const LOOPBACK = ['localhost', '127.0.0.1', '[::1]']

function variable(env: Env, name: string): string | undefined {
  return env[name]?.trim() || env[name.toUpperCase()]?.trim() || undefined
}

/** A proxy URL; "host:port" gets http:// as curl gives it. Credentials never appear in the error. */
function proxyUrl(env: Env, name: string): string | undefined {
  const value = variable(env, name)
  if (value === undefined) return undefined
  const url = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`
  let protocol: string
  try {
    protocol = new URL(url).protocol
  } catch {
    throw new UserError(`the proxy in ${name} or ${name.toUpperCase()} is not a URL`, {hint: 'write it as http://HOST:PORT'})
  }
  if (protocol !== 'http:' && protocol !== 'https:')
    throw new UserError(`the proxy in ${name} or ${name.toUpperCase()} is a ${protocol.slice(0, -1)} proxy`, {
      hint: 'kube-spawn speaks to HTTP and HTTPS proxies only; write it as http://HOST:PORT',
    })
  return url
}

/** The proxies the environment names, or undefined when it names none. */
export function proxySettings(env: Env = process.env): ProxySettings | undefined {
  const http = proxyUrl(env, 'http_proxy')
  const https = proxyUrl(env, 'https_proxy') ?? http
  if (https === undefined) return undefined
  return {...(http ? {http} : {}), https, ...(variable(env, 'no_proxy') ? {noProxy: variable(env, 'no_proxy')} : {})}
}

/** Joins NO_PROXY lists: entries split at commas or blanks, the first of each kept, in order. */
export function joinNoProxy(...lists: (string | undefined)[]): string {
  const entries = lists.flatMap((list) => (list ?? '').split(/[,\s]+/)).filter((entry) => entry !== '')
  return [...new Set(entries)].join(',')
}

let installed: Promise<boolean> | undefined

/**
 * Routes this process's fetch through the environment's proxies, once: kube-spawn's downloads and
 * plugins' own fetch alike. Resolves to whether a proxy is in use. Without proxy variables nothing
 * changes: undici is not even loaded (importing it replaces Node's default dispatcher).
 */
export function useEnvProxy(env: Env = process.env): Promise<boolean> {
  installed ??= (async () => {
    const settings = proxySettings(env)
    if (!settings) return false
    const {EnvHttpProxyAgent, setGlobalDispatcher} = await import('undici')
    // setGlobalDispatcher also sets the dispatcher Node's built-in fetch reads. An empty string means
    // "no proxy" and keeps undici from reading the environment again. proxyTunnel false sends http://
    // URLs as plain proxy requests, as curl does: proxies often allow CONNECT to port 443 only.
    const agent = new EnvHttpProxyAgent({
      httpProxy: settings.http ?? '',
      httpsProxy: settings.https ?? '',
      // undici honours "*" only as the whole value.
      noProxy: joinNoProxy(settings.noProxy).split(',').includes('*') ? '*' : joinNoProxy(settings.noProxy, ...LOOPBACK),
      proxyTunnel: false,
    })
    setGlobalDispatcher(agent)
    return true
  })()
  return installed
}

/** The cluster's own addresses and names, which its nodes reach directly. */
export interface ClusterRanges {
  nodeSubnet: string
  podCidr: string
  serviceCidr: string
  nodeNames: string[]
}

/** Kubernetes' in-cluster service names (the cluster's DNS domain is cluster.local), as kind adds them. */
const SERVICE_DOMAINS = ['.svc', '.svc.cluster', '.svc.cluster.local']

/**
 * Environment= lines for the nodes' container runtime services, so that image pulls use the host's
 * proxies; undefined when the host has none. NO_PROXY gets the cluster's node, pod and service ranges,
 * its node names, loopback and the service domains. Both cases are set: Go reads HTTP_PROXY first,
 * other tools only http_proxy.
 */
export function runtimeProxyEnvironment(env: Env, cluster: ClusterRanges): string[] | undefined {
  const settings = proxySettings(env)
  if (!settings) return undefined
  const noProxy = joinNoProxy(
    settings.noProxy,
    cluster.nodeSubnet,
    cluster.podCidr,
    cluster.serviceCidr,
    ...cluster.nodeNames,
    'localhost',
    '127.0.0.1',
    ...SERVICE_DOMAINS,
  )
  const values: [string, string | undefined][] = [
    ['HTTP_PROXY', settings.http],
    ['HTTPS_PROXY', settings.https],
    ['NO_PROXY', noProxy],
  ]
  return values.flatMap(([name, value]) =>
    value === undefined ? [] : [name, name.toLowerCase()].map((key) => `Environment=${systemdQuoted(`${key}=${value}`)}`),
  )
}

/** A double-quoted unit file value: backslash and quote escaped, and % doubled, else systemd reads it as a specifier. */
function systemdQuoted(text: string): string {
  return `"${text.replace(/[\\"]/g, '\\$&').replace(/%/g, '%%')}"`
}
