/**
 * The network guard of the test phase: loaded with NODE_OPTIONS="--import=<this file>", it makes every
 * attempt of a Node process (and of its Node children, which inherit NODE_OPTIONS) to reach beyond
 * this machine fail loudly, so that a test that needs the internet fails on the machine where it runs
 * instead of on a fresh or offline one.
 *
 * - DNS: dns.lookup (callback and promise) may look up localhost, IP literals and the names in
 *   KUBE_SPAWN_NET_GUARD_ALLOW_HOSTS (comma-separated). dns.resolve*, dns.reverse and the Resolver
 *   classes ask the DNS server directly, without /etc/hosts, so they may only query the allowed names.
 *   A refusal happens before the real resolver is called: no query leaves.
 * - Connections: net.Socket.prototype.connect (under net.connect, tls.connect, http, https and fetch)
 *   may reach unix sockets, loopback (127.0.0.0/8, ::1), the unspecified address (this host) and the
 *   CIDRs in KUBE_SPAWN_NET_GUARD_ALLOW_CIDRS (comma-separated). A connection by name needs a name
 *   that may be looked up, and every address it resolves to must be permitted.
 * - A refusal throws (or rejects, or fails the socket with) an Error whose message starts with
 *   "network guard:" and names the target, and appends one line (time, pid, argv, target) to the file
 *   KUBE_SPAWN_NET_GUARD_LOG, or writes it to stderr when that is unset, so that a caller that swallows
 *   the error is still caught. Nothing is printed while nothing is refused.
 *
 * Each setting may also come as a query parameter of this module's URL (test/guard/with-network-guard puts them
 * there): the test helpers start the CLI with an environment stripped of KUBE_SPAWN_* variables, but
 * they keep NODE_OPTIONS. An environment variable wins over the URL.
 *
 * Not covered: UDP (dgram), and programs that are not Node (curl, apt-get, debootstrap).
 */
import dns from 'node:dns'
import {appendFileSync} from 'node:fs'
import net from 'node:net'

const INSTALLED = Symbol.for('kube-spawn.network-guard')

// The same file may be imported twice under two URLs (with and without settings): patch once.
if (!globalThis[INSTALLED]) {
  globalThis[INSTALLED] = true
  install()
}

function install() {
  const urlSettings = new URL(import.meta.url).searchParams
  const setting = (name) => process.env[name] ?? urlSettings.get(name) ?? ''
  const list = (text) =>
    text
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item !== '')

  const logFile = setting('KUBE_SPAWN_NET_GUARD_LOG')
  const allowedHosts = new Set(list(setting('KUBE_SPAWN_NET_GUARD_ALLOW_HOSTS')).map(normalName))
  const permittedAddresses = addressList(list(setting('KUBE_SPAWN_NET_GUARD_ALLOW_CIDRS')))

  /** Records a refused attempt and returns the Error to throw. */
  function refusal(target) {
    const line = `${new Date().toISOString()} pid=${process.pid} argv=${JSON.stringify(process.argv)} refused ${target}\n`
    try {
      if (logFile) appendFileSync(logFile, line)
      else process.stderr.write(`network guard: ${line}`)
    } catch (error) {
      process.stderr.write(`network guard: cannot append to ${logFile} (${error.message}): ${line}`)
    }
    const error = new Error(`network guard: refused ${target}; tests stay on this machine (docs/testing.md)`)
    error.code = 'ERR_NETWORK_GUARD'
    return error
  }

  const isLocalhost = (name) => normalName(name) === 'localhost'
  /** dns.lookup reads /etc/hosts first: localhost and IP literals never reach a DNS server. */
  const mayLookUp = (name) =>
    typeof name !== 'string' || name === '' || net.isIP(name) !== 0 || isLocalhost(name) || allowedHosts.has(normalName(name))
  /** The resolve* family always asks the DNS server, even for localhost. */
  const mayQuery = (name) => typeof name === 'string' && allowedHosts.has(normalName(name))
  const addressPermitted = (address) => {
    const plain = String(address)
      .replace(/%.*$/, '') // an IPv6 zone
      .replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '') // IPv4-mapped IPv6
    const family = net.isIP(plain)
    return family !== 0 && permittedAddresses.check(plain, family === 4 ? 'ipv4' : 'ipv6')
  }
  /** Only a reverse lookup of this host's own addresses may be answered without a DNS server. */
  const thisHost = addressList([])
  const mayLookUpService = (address) => net.isIP(address) === 0 || thisHost.check(address, net.isIP(address) === 4 ? 'ipv4' : 'ipv6')

  /** Replaces owner[key] by a function that refuses unless permitted(first argument). */
  function guardMethod(owner, key, permitted, what, {promise = false} = {}) {
    const original = owner[key]
    if (typeof original !== 'function') return
    const guarded = function (...args) {
      if (permitted(args[0])) return original.apply(this, args)
      const error = refusal(what(args[0]))
      if (promise) return Promise.reject(error)
      throw error
    }
    // util.promisify(dns.lookup) resolves to {address, family} through a symbol on the original.
    for (const symbol of Object.getOwnPropertySymbols(original)) {
      Object.defineProperty(guarded, symbol, Object.getOwnPropertyDescriptor(original, symbol))
    }
    Object.defineProperty(guarded, 'name', {value: original.name})
    owner[key] = guarded
  }

  const queryMethods = (owner) => Object.getOwnPropertyNames(owner).filter((key) => /^(resolve\w*|reverse)$/.test(key))
  for (const [owner, label, promise] of [
    [dns, 'dns', false],
    [dns.promises, 'dns.promises', true],
  ]) {
    guardMethod(owner, 'lookup', mayLookUp, (name) => `DNS lookup of ${name} (${label}.lookup)`, {promise})
    guardMethod(owner, 'lookupService', mayLookUpService, (address) => `reverse lookup of ${address} (${label}.lookupService)`, {promise})
    for (const key of queryMethods(owner)) guardMethod(owner, key, mayQuery, (name) => `DNS query for ${name} (${label}.${key})`, {promise})
  }
  for (const [prototype, label, promise] of [
    [dns.Resolver.prototype, 'dns.Resolver', false],
    [dns.promises.Resolver.prototype, 'dns.promises.Resolver', true],
  ]) {
    for (const key of queryMethods(prototype))
      guardMethod(prototype, key, mayQuery, (name) => `DNS query for ${name} (${label}#${key})`, {promise})
  }

  /** A lookup for connect that fails the socket when the name resolves to an address that is not permitted. */
  function permittedOnlyLookup(target, lookup) {
    return function lookupPermittedOnly(hostname, options, callback) {
      lookup(hostname, options, (error, address, family) => {
        if (error) return callback(error)
        const refused = (Array.isArray(address) ? address.map((entry) => entry.address) : [address]).filter((a) => !addressPermitted(a))
        if (refused.length > 0) return callback(refusal(`connection to ${target} (${refused.join(', ')})`))
        callback(null, address, family)
      })
    }
  }

  const originalConnect = net.Socket.prototype.connect
  net.Socket.prototype.connect = function connect(...args) {
    const {options, callback} = connectArguments(args)
    if (options.path !== undefined && options.path !== null) return originalConnect.apply(this, args) // a unix socket
    const host = options.host || 'localhost'
    const target = `${net.isIPv6(host) ? `[${host}]` : host}:${options.port}`
    if (net.isIP(host) !== 0) {
      if (!addressPermitted(host)) throw refusal(`connection to ${target}`)
      return originalConnect.apply(this, args)
    }
    if (!mayLookUp(host)) throw refusal(`connection to ${target}`)
    const checked = {__proto__: options, lookup: permittedOnlyLookup(target, options.lookup ?? dns.lookup)}
    return callback ? originalConnect.call(this, checked, callback) : originalConnect.call(this, checked)
  }
}

function normalName(name) {
  return String(name).toLowerCase().replace(/\.$/, '')
}

/** Loopback, the unspecified address (it reaches this host) and the given CIDRs or addresses. */
function addressList(cidrs) {
  const permitted = new net.BlockList()
  permitted.addSubnet('127.0.0.0', 8, 'ipv4')
  permitted.addAddress('::1', 'ipv6')
  permitted.addAddress('0.0.0.0', 'ipv4')
  permitted.addAddress('::', 'ipv6')
  for (const cidr of cidrs) {
    const [address, bits, extra] = cidr.split('/')
    const family = net.isIP(address)
    const prefix = bits === undefined ? (family === 4 ? 32 : 128) : Number(bits)
    if (family === 0 || extra !== undefined || !Number.isInteger(prefix) || prefix < 0 || prefix > (family === 4 ? 32 : 128)) {
      throw new Error(`network guard: "${cidr}" in KUBE_SPAWN_NET_GUARD_ALLOW_CIDRS is not an address or CIDR`)
    }
    permitted.addSubnet(address, prefix, family === 4 ? 'ipv4' : 'ipv6')
  }
  return permitted
}

/**
 * The options and callback of a Socket#connect call, in any of its forms: (options[, cb]),
 * (port[, host][, cb]), (path[, cb]), and the [options, cb] array that net.connect() passes on.
 */
function connectArguments(args) {
  if (Array.isArray(args[0])) return {options: args[0][0], callback: args[0][1] ?? undefined}
  const last = args.at(-1)
  const callback = typeof last === 'function' ? last : undefined
  const [first, second] = args
  if (first !== null && typeof first === 'object') return {options: first, callback}
  // Like net: a string that is not a port number is a unix socket path.
  if (typeof first === 'string' && !(Number(first) >= 0)) return {options: {path: first}, callback}
  return {options: {port: first, host: typeof second === 'string' ? second : undefined}, callback}
}
