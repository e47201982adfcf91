/**
 * The network guard (test/guard/network-guard.mjs) in real Node processes: what it refuses, that it
 * refuses before anything leaves, what it logs, and what it lets through. Where a test must see what
 * would have reached the network, a fake (loaded before the guard, so the guard takes it for the
 * real thing) records the calls instead of sending anything.
 */
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {existsSync} from 'node:fs'
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {createServer as createHttpServer, type Server as HttpServer} from 'node:http'
import {createServer as createNetServer, type AddressInfo, type Server as NetServer} from 'node:net'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {REPO} from '../helpers/cli.ts'

const GUARD = join(REPO, 'test', 'guard', 'network-guard.mjs')
const WITH_GUARD = join(REPO, 'test', 'guard', 'with-network-guard')
const LOG_LINE = /^\d{4}-\d\d-\d\dT\S+Z pid=\d+ argv=\[.*\] refused .+$/

/**
 * Stands in for the resolver and for Socket#connect: records every call that gets past the guard and
 * sends nothing. mirror.example resolves into the allowed CIDR, every other name outside it. It calls
 * back at once, so that the record keeps the order of the calls.
 */
const FAKE_NETWORK = `
import dns from 'node:dns'
import net from 'node:net'
globalThis.reached = []
const addressOf = (name) => (String(name).startsWith('mirror.example') ? '198.51.100.7' : '192.0.2.10')
function fakeLookup(name, options, callback) {
  globalThis.reached.push('lookup ' + name)
  const address = addressOf(name)
  if (typeof options === 'function') callback = options
  if (options?.all) callback(null, [{address, family: 4}])
  else callback(null, address, 4)
}
dns.lookup = fakeLookup
dns.promises.lookup = async (name) => (globalThis.reached.push('lookup ' + name), {address: addressOf(name), family: 4})
dns.promises.resolve4 = async (name) => (globalThis.reached.push('resolve4 ' + name), [addressOf(name)])
for (const prototype of [dns.Resolver.prototype, dns.promises.Resolver.prototype]) {
  prototype.resolve4 = async function (name) { globalThis.reached.push('Resolver#resolve4 ' + name); return [addressOf(name)] }
}
net.Socket.prototype.connect = function (...args) {
  const options = Array.isArray(args[0]) ? args[0][0] : args[0]
  globalThis.reached.push('connect ' + options.host + ':' + options.port)
  options.lookup?.(options.host, {all: true}, (error, addresses) =>
    globalThis.reached.push(error ? error.message : 'resolved ' + addresses.map((a) => a.address).join(',')),
  )
  return this
}
`

/** Prints, as JSON, each attempt's outcome (the error message, or "ok") and what reached the fake network. */
const attempts = (body: string) => `
import dns from 'node:dns'
import net from 'node:net'
const outcome = {}
const attempt = async (label, run) => {
  try { await run(); outcome[label] = 'ok' } catch (error) { outcome[label] = error.message }
}
${body}
await new Promise((resolve) => setTimeout(resolve, 50))
console.log(JSON.stringify({outcome, reached: globalThis.reached ?? []}))
`

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

let work: string
let logFile: string
let fakeNetwork: string

/** The environment without the guard this test run itself may be under. */
function baseEnv(extra: Record<string, string>): Record<string, string> {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(
      (entry): entry is [string, string] =>
        entry[1] !== undefined &&
        entry[0] !== 'NODE_OPTIONS' &&
        entry[0] !== 'NODE_TEST_CONTEXT' &&
        !entry[0].startsWith('KUBE_SPAWN_NET_GUARD_'),
    ),
  )
  return {...env, PATH: `${dirname(process.execPath)}:${env.PATH ?? '/usr/bin:/bin'}`, ...extra}
}

function collect(file: string, args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {env, stdio: ['ignore', 'pipe', 'pipe']})
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => (stdout += chunk))
    child.stderr.on('data', (chunk) => (stderr += chunk))
    child.on('error', reject)
    child.on('close', (code) => resolve({code, stdout, stderr}))
  })
}

/** Runs a script in `node --import=[fake network] --import=guard`, logging to logFile unless told otherwise. */
async function guarded(
  name: string,
  script: string,
  {fake = false, env = {KUBE_SPAWN_NET_GUARD_LOG: logFile}}: {fake?: boolean; env?: Record<string, string>} = {},
): Promise<Run> {
  const path = join(work, name)
  await writeFile(path, script)
  const imports = [...(fake ? [fakeNetwork] : []), GUARD].map((module) => `--import=${module}`)
  return collect(process.execPath, [...imports, path], baseEnv(env))
}

async function loggedLines(): Promise<string[]> {
  const text = await readFile(logFile, 'utf8').catch(() => '')
  return text.split('\n').filter((line) => line !== '')
}

describe('network guard', () => {
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'ks-net-guard-'))
    fakeNetwork = join(work, 'fake-network.mjs')
    await writeFile(fakeNetwork, FAKE_NETWORK)
  })

  after(() => rm(work, {recursive: true, force: true}))

  it('refuses DNS lookups and queries of a public name before the real resolver sees them, and logs each', async () => {
    logFile = join(work, 'dns.log')
    const run = await guarded(
      'dns-public.mjs',
      attempts(`
await attempt('dns.lookup', () => dns.lookup('example.com', () => {}))
await attempt('dns.promises.lookup', () => dns.promises.lookup('example.com'))
await attempt('dns.promises.resolve4', () => dns.promises.resolve4('example.com'))
await attempt('Resolver#resolve4', () => new dns.promises.Resolver().resolve4('example.com'))
await attempt('net.connect by name', () => net.connect(443, 'example.com'))
`),
      {fake: true},
    )
    assert.equal(run.code, 0, run.stderr)
    assert.equal(run.stderr, '')
    const {outcome, reached} = JSON.parse(run.stdout)
    for (const [label, message] of Object.entries(outcome)) assert.match(String(message), /^network guard: refused .*example\.com/, label)
    assert.deepEqual(reached, [], 'nothing reached the resolver or a socket')
    const lines = await loggedLines()
    assert.equal(lines.length, 5, lines.join('\n'))
    for (const line of lines) assert.match(line, LOG_LINE)
    assert.ok(lines.every((line) => line.includes('dns-public.mjs') && line.includes('example.com')))
  })

  it('refuses fetch of a public address and logs it, although the caller swallows the error', async () => {
    logFile = join(work, 'fetch.log')
    const script = `
try {
  await fetch('http://203.0.113.1/', {signal: AbortSignal.timeout(10_000)})
  console.log('fetched')
} catch (error) {
  console.log(error.cause?.message ?? error.message)
}
`
    const run = await guarded('fetch-public.mjs', script)
    assert.equal(run.code, 0, run.stderr)
    assert.match(run.stdout, /^network guard: refused connection to 203\.0\.113\.1:80/)
    const lines = await loggedLines()
    assert.equal(lines.length, 1, lines.join('\n'))
    assert.match(lines[0], LOG_LINE)
    assert.match(lines[0], /pid=\d+ argv=\[.*fetch-public\.mjs"\] refused connection to 203\.0\.113\.1:80$/)

    // Without a log file, the line goes to stderr.
    const unlogged = await guarded('fetch-public.mjs', script, {env: {}})
    assert.match(unlogged.stderr, /^network guard: \S+ pid=\d+ .* refused connection to 203\.0\.113\.1:80$/m)
  })

  describe('with servers on loopback and a unix socket', () => {
    let http: HttpServer
    let unix: NetServer
    let port: number
    let socketPath: string

    before(async () => {
      http = createHttpServer((_request, response) => response.end('over loopback'))
      await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
      port = (http.address() as AddressInfo).port
      socketPath = join(work, 'unix.sock')
      unix = createNetServer((socket) => socket.end('over a unix socket'))
      await new Promise<void>((resolve) => unix.listen(socketPath, resolve))
    })

    after(() => {
      http.close()
      unix.close()
    })

    it('lets connections to them through, and prints and logs nothing', async () => {
      logFile = join(work, 'local.log')
      const run = await guarded(
        'local.mjs',
        `
import http from 'node:http'
import net from 'node:net'
const viaFetch = await (await fetch('http://127.0.0.1:${port}/')).text()
const viaName = await new Promise((resolve, reject) =>
  http.get('http://localhost:${port}/', (response) => response.setEncoding('utf8').on('data', resolve)).on('error', reject),
)
const viaUnix = await new Promise((resolve, reject) =>
  net.connect(${JSON.stringify(socketPath)}).setEncoding('utf8').on('data', resolve).on('error', reject),
)
console.log(JSON.stringify([viaFetch, viaName, viaUnix]))
`,
      )
      assert.equal(run.code, 0, run.stderr)
      assert.equal(run.stderr, '')
      assert.deepEqual(JSON.parse(run.stdout), ['over loopback', 'over loopback', 'over a unix socket'])
      assert.ok(!existsSync(logFile), 'nothing was logged')
    })
  })

  it('passes allowed names to the real resolver and connects to allowed CIDRs, still checking where a name leads', async () => {
    logFile = join(work, 'allowed.log')
    const run = await guarded(
      'allowed.mjs',
      attempts(`
await attempt('lookup', () => new Promise((resolve) => dns.lookup('mirror.example', resolve)))
await attempt('promises.lookup', () => dns.promises.lookup('DEB.debian.org.'))
await attempt('resolve4', () => dns.promises.resolve4('mirror.example'))
await attempt('address in a CIDR', () => net.connect({host: '198.51.100.7', port: 80}))
await attempt('IPv6 address in a CIDR', () => net.connect({host: '2001:db8::1', port: 80}))
await attempt('name into a CIDR', () => net.connect({host: 'mirror.example', port: 80}))
await attempt('name out of the CIDRs', () => net.connect({host: 'deb.debian.org', port: 80}))
await attempt('address out of the CIDRs', () => net.connect({host: '192.0.2.1', port: 80}))
`),
      {
        fake: true,
        env: {
          KUBE_SPAWN_NET_GUARD_LOG: logFile,
          KUBE_SPAWN_NET_GUARD_ALLOW_HOSTS: 'mirror.example, deb.debian.org',
          KUBE_SPAWN_NET_GUARD_ALLOW_CIDRS: '198.51.100.0/24,2001:db8::/32',
        },
      },
    )
    assert.equal(run.code, 0, run.stderr)
    const {outcome, reached} = JSON.parse(run.stdout)
    const {'address out of the CIDRs': refused, ...passed} = outcome
    assert.match(refused, /^network guard: refused connection to 192\.0\.2\.1:80/)
    // A name that leads out of the CIDRs fails the socket through its lookup (an 'error' event), not the call.
    for (const [label, result] of Object.entries(passed)) assert.equal(result, 'ok', label)
    assert.deepEqual(reached.slice(0, -1), [
      'lookup mirror.example',
      'lookup DEB.debian.org.',
      'resolve4 mirror.example',
      'connect 198.51.100.7:80',
      'connect 2001:db8::1:80',
      'connect mirror.example:80',
      'lookup mirror.example',
      'resolved 198.51.100.7',
      'connect deb.debian.org:80',
      'lookup deb.debian.org',
    ])
    assert.match(reached.at(-1), /^network guard: refused connection to deb\.debian\.org:80 \(192\.0\.2\.10\)/)
    const lines = await loggedLines()
    assert.deepEqual(
      lines.map((line) => line.replace(/^.* refused /, '')),
      ['connection to deb.debian.org:80 (192.0.2.10)', 'connection to 192.0.2.1:80'],
    )
  })

  describe('test/guard/with-network-guard', () => {
    it('fails a passing command whose Node grandchild swallowed a refusal, with its environment stripped of KUBE_SPAWN_*', async () => {
      logFile = join(work, 'wrapper.log')
      const grandchild = `fetch('http://203.0.113.1/').catch(() => console.log('swallowed'))`
      const child = `
const {spawnSync} = require('node:child_process')
const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('KUBE_SPAWN_')))
spawnSync(process.execPath, ['-e', ${JSON.stringify(grandchild)}], {env, stdio: 'inherit'})
`
      const run = await collect('bash', [WITH_GUARD, 'node', '-e', child], baseEnv({KUBE_SPAWN_NET_GUARD_LOG: logFile}))
      assert.equal(run.code, 1, run.stderr)
      assert.equal(run.stdout, 'swallowed\n')
      assert.match(run.stderr, /^network guard: 1 refused attempt\(s\) to reach beyond this machine/)
      assert.match(run.stderr, /refused connection to 203\.0\.113\.1:80$/m)
      const lines = await loggedLines()
      assert.equal(lines.length, 1)
    })

    it('passes on the exit code of a command that stays on this machine, and says nothing', async () => {
      logFile = join(work, 'quiet.log')
      const env = baseEnv({KUBE_SPAWN_NET_GUARD_LOG: logFile})
      assert.deepEqual(await collect('bash', [WITH_GUARD, 'node', '-e', 'process.exit(0)'], env), {code: 0, stdout: '', stderr: ''})
      assert.deepEqual(await collect('bash', [WITH_GUARD, 'node', '-e', 'process.exit(3)'], env), {code: 3, stdout: '', stderr: ''})
      assert.deepEqual(await loggedLines(), [])
    })
  })
})
