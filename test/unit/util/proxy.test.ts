import assert from 'node:assert/strict'
import {execFile, execFileSync} from 'node:child_process'
import {createHash, randomBytes} from 'node:crypto'
import {mkdtemp, readFile, rm, stat} from 'node:fs/promises'
import {type RequestListener, type Server, createServer, request} from 'node:http'
import {createServer as createTlsServer} from 'node:https'
import {type AddressInfo, type Socket, connect} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import type {Cluster} from '@kube-spawn/sdk'

import type {ClusterContext} from '../../../dist/context/index.js'
import {LocalNodeHandle} from '../../../dist/node/handle.js'
import {PROXY_DROP_IN, installRuntimeFiles, proxyDropIn} from '../../../dist/runtime/files.js'
import {joinNoProxy, proxySettings, runtimeProxyEnvironment} from '../../../dist/util/proxy.js'

const DIST = new URL('../../../dist/', import.meta.url)
/** Only the proxy knows this name: a client that looked it up itself would meet the network guard. */
const FAKE_HOST = 'releases.example.invalid'
const PROXY_VARIABLES = ['http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'no_proxy', 'NO_PROXY']

const RANGES = {nodeSubnet: '10.22.0.0/24', podCidr: '10.244.0.0/16', serviceCidr: '10.96.0.0/12', nodeNames: ['ks-dev-cp', 'ks-dev-w1']}

describe('proxy settings from the environment', () => {
  it('names no proxy without the variables, or with empty ones', () => {
    assert.equal(proxySettings({}), undefined)
    assert.equal(proxySettings({HTTP_PROXY: ' ', NO_PROXY: 'example.org'}), undefined)
  })

  it('lets the lower-case name win, ignores an empty one, and uses the http proxy for https too', () => {
    assert.deepEqual(proxySettings({http_proxy: 'http://a:1', HTTP_PROXY: 'http://b:2'}), {http: 'http://a:1', https: 'http://a:1'})
    assert.deepEqual(proxySettings({http_proxy: '', HTTP_PROXY: 'http://b:2'}), {http: 'http://b:2', https: 'http://b:2'})
    assert.deepEqual(proxySettings({HTTPS_PROXY: 'https://s:443', no_proxy: '.corp', NO_PROXY: 'x'}), {
      https: 'https://s:443',
      noProxy: '.corp',
    })
  })

  it('adds http:// to host:port, as curl does', () => {
    assert.deepEqual(proxySettings({HTTP_PROXY: 'proxy.corp:3128'}), {http: 'http://proxy.corp:3128', https: 'http://proxy.corp:3128'})
  })

  it('refuses what is not an HTTP or HTTPS proxy URL, without repeating it (it may hold a password)', () => {
    assert.throws(
      () => proxySettings({HTTPS_PROXY: 'http://user:secret@[bad'}),
      (error: Error) => {
        assert.match(error.message, /^the proxy in https_proxy or HTTPS_PROXY is not a URL$/)
        return true
      },
    )
    assert.throws(() => proxySettings({http_proxy: 'socks5://127.0.0.1:1080'}), /is a socks5 proxy/)
  })

  it('joins NO_PROXY lists, each entry once, in order', () => {
    assert.equal(joinNoProxy(' a.corp, b ,,a.corp', undefined, 'c b'), 'a.corp,b,c')
  })
})

describe('the nodes’ container runtime behind a proxy', () => {
  it('gets nothing without a proxy', () => {
    assert.equal(runtimeProxyEnvironment({NO_PROXY: '.corp'}, RANGES), undefined)
  })

  it('gets both cases of each variable, and NO_PROXY with the cluster’s own ranges and names', () => {
    const noProxy =
      '.corp,localhost,10.22.0.0/24,10.244.0.0/16,10.96.0.0/12,ks-dev-cp,ks-dev-w1,127.0.0.1,.svc,.svc.cluster,.svc.cluster.local'
    assert.deepEqual(runtimeProxyEnvironment({http_proxy: 'proxy:3128', NO_PROXY: '.corp,localhost'}, RANGES), [
      'Environment="HTTP_PROXY=http://proxy:3128"',
      'Environment="http_proxy=http://proxy:3128"',
      'Environment="HTTPS_PROXY=http://proxy:3128"',
      'Environment="https_proxy=http://proxy:3128"',
      `Environment="NO_PROXY=${noProxy}"`,
      `Environment="no_proxy=${noProxy}"`,
    ])
  })

  it('escapes what systemd would read as a specifier or an escape', () => {
    const lines = runtimeProxyEnvironment({HTTPS_PROXY: 'http://me:p%40ss"@proxy:3128', NO_PROXY: 'a\\b'}, RANGES)!
    assert.equal(lines[0], 'Environment="HTTPS_PROXY=http://me:p%%40ss\\"@proxy:3128"')
    assert.match(lines[2], /^Environment="NO_PROXY=a\\\\b,/)
  })

  it('renders the drop-in from the cluster, on its own /24', () => {
    const dropIn = proxyDropIn({HTTPS_PROXY: 'http://proxy:3128'}, cluster())!
    assert.match(dropIn, /^\[Service\]\nEnvironment="HTTPS_PROXY=http:\/\/proxy:3128"\n/)
    assert.match(dropIn, /\nEnvironment="no_proxy=10\.22\.0\.0\/24,10\.244\.0\.0\/16,10\.96\.0\.0\/12,ks-dev-cp,ks-dev-w1,localhost,/)
    assert.ok(dropIn.endsWith('.svc.cluster.local"\n'))
    assert.equal(proxyDropIn({}, cluster()), undefined)
  })

  it('is written beside each runtime service’s drop-in at create, and removed when the host has no proxy', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kube-spawn-proxy-'))
    const saved = Object.fromEntries(PROXY_VARIABLES.map((name) => [name, process.env[name]]))
    try {
      const node = new LocalNodeHandle(cluster().machines[0], dir)
      const ctx = {
        cluster: cluster(),
        cacheDir: dir,
        nodes: [node],
        runtime: {name: 'containerd', files: [], services: ['containerd.service']},
        providerPlugins: {runtime: 'test', image: 'test'},
      } as unknown as ClusterContext
      const path = `/etc/systemd/system/containerd.service.d/${PROXY_DROP_IN}`
      const task = {title: ''}
      for (const name of PROXY_VARIABLES) delete process.env[name]

      process.env.HTTPS_PROXY = 'http://user:pw@proxy:3128'
      await installRuntimeFiles.task(ctx, task as never)
      assert.match((await node.readFile(path)) ?? '', /HTTPS_PROXY=http:\/\/user:pw@proxy:3128/)
      assert.equal((await stat(join(node.dir, 'upper', path))).mode & 0o777, 0o600)
      assert.match(task.title, /with the host’s proxy$/)

      delete process.env.HTTPS_PROXY
      await installRuntimeFiles.task(ctx, task as never)
      assert.equal(await node.readFile(path), undefined)
      assert.match((await node.readFile('/etc/systemd/system/containerd.service.d/10-kube-spawn.conf')) ?? '', /TimeoutStopSec/)
    } finally {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name]
        else process.env[name] = value
      }
      await rm(dir, {recursive: true, force: true})
    }
  })
})

function cluster(): Cluster {
  return {
    clusterName: 'dev',
    containerRuntime: 'containerd',
    image: 'debian',
    kubernetesVersion: 'v1.30.0',
    nodes: 2,
    token: 'abcdef.0123456789abcdef',
    cni: 'bridge',
    kubernetes: {source: 'https://dl.k8s.io'},
    network: {subnet: '10.22.0.0/16', clusterSubnet: '10.22.0.0/24', podCidr: '10.244.0.0/16', serviceCidr: '10.96.0.0/12', egress: true},
    bindmount: {readOnly: [], readWrite: []},
    runtimeConfig: {cgroupPerQos: true, failSwapOn: false, timeout: '10m', useLegacyCgroupDriver: false},
    pluginConfig: {},
    machines: ['ks-dev-cp', 'ks-dev-w1'].map((name, i) => ({
      name,
      role: i === 0 ? ('control-plane' as const) : ('worker' as const),
      ip: `10.22.0.${i + 2}`,
      running: false,
      bindmount: {readOnly: [], readWrite: []},
    })),
    state: {initialized: false},
  }
}

const listen = async (server: Server, host = '127.0.0.1'): Promise<number> => {
  await new Promise<void>((resolve) => server.listen(0, host, resolve))
  return (server.address() as AddressInfo).port
}

/**
 * A forward proxy, as a corporate one: plain proxy requests (an absolute URI) and CONNECT tunnels.
 * Whatever host a request names, it reaches the local file servers; it records each request.
 */
class ForwardProxy {
  seen: string[] = []
  readonly server: Server

  constructor(ports: {http: number; https?: number}) {
    this.server = createServer((req, res) => {
      this.seen.push(`${req.method} ${req.url}`)
      const target = URL.parse(req.url ?? '')
      if (!target) return void res.writeHead(400).end()
      const upstream = request(
        {host: '127.0.0.1', port: ports.http, method: req.method, path: target.pathname + target.search, headers: req.headers},
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers)
          answer.pipe(res)
        },
      )
      upstream.on('error', () => res.destroy())
      req.pipe(upstream)
    })
    this.server.on('connect', (req, client: Socket, head: Buffer) => {
      this.seen.push(`CONNECT ${req.url}`)
      if (!ports.https || !(req.url ?? '').endsWith(':443')) return void client.end('HTTP/1.1 502 Bad Gateway\r\n\r\n')
      const upstream = connect(ports.https, '127.0.0.1', () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n')
        upstream.write(head)
        upstream.pipe(client)
        client.pipe(upstream)
      })
      upstream.on('error', () => client.destroy())
      client.on('error', () => upstream.destroy())
    })
  }
}

/** Runs a script in a child Node, which reads the proxy variables at start as the CLI does; the guard rides along in NODE_OPTIONS. */
async function runChild(script: string, args: string[], env: Record<string, string>): Promise<{ok: boolean; out: string; err: string}> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([name]) => !PROXY_VARIABLES.includes(name)))
  // Asynchronous: the proxy and the file servers answer from this process.
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--input-type=module', '-e', script, DIST.href, ...args],
      {env: {...base, ...env}, timeout: 30_000},
      (error, out, err) => resolve({ok: !error, out, err}),
    )
  })
}

/** kube-spawn's verified download, as the Kubernetes, runtime and image fetches use it. */
const DOWNLOAD = `
  const [, dist, url, dest, sha256] = process.argv
  const {downloadVerified} = await import(new URL('util/download.js', dist))
  try {
    await downloadVerified({url, dest, sha256, what: 'the fixture', hint: 'check the test servers', idleTimeoutMs: 10_000})
    console.log('verified')
  } catch (error) {
    console.log(\`failed: \${error.message} (hint: \${error.hint})\`)
    process.exitCode = 1
  }
  console.log(\`undici loaded: \${globalThis[Symbol.for('undici.globalDispatcher.2')] !== undefined}\`)`

/** A plugin's own fetch, after the CLI's start-up set the proxy up. */
const PLUGIN_FETCH = `
  const [, dist, url] = process.argv
  const {useEnvProxy} = await import(new URL('util/proxy.js', dist))
  await useEnvProxy()
  const response = await fetch(url)
  console.log(response.status, (await response.arrayBuffer()).byteLength)`

describe('downloads through a forward proxy', () => {
  const content = randomBytes(256 * 1024)
  const sha256 = createHash('sha256').update(content).digest('hex')
  const serve: RequestListener = (req, res) => {
    if (req.url !== '/release/file.bin') return void res.writeHead(404).end()
    res.writeHead(200, {'content-type': 'application/octet-stream', 'content-length': content.length}).end(content)
  }
  const files = createServer(serve)
  let tls: Server | undefined
  let proxy: ForwardProxy
  let proxyUrl = ''
  let filesPort = 0
  let dir = ''
  let caFile: string | undefined

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kube-spawn-proxy-'))
    filesPort = await listen(files)
    // A certificate for the fake name, which the child trusts: the tunnel must carry real TLS to it.
    try {
      const [key, cert] = [join(dir, 'key.pem'), join(dir, 'cert.pem')]
      execFileSync(
        'openssl',
        [
          ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1'],
          ...['-keyout', key, '-out', cert, '-subj', `/CN=${FAKE_HOST}`, '-addext', `subjectAltName=DNS:${FAKE_HOST}`],
        ],
        {stdio: 'ignore'},
      )
      tls = createTlsServer({key: await readFile(key), cert: await readFile(cert)}, serve)
      caFile = cert
    } catch {
      tls = undefined // no openssl: the CONNECT test is skipped
    }
    proxy = new ForwardProxy({http: filesPort, https: tls ? await listen(tls) : undefined})
    proxyUrl = `http://127.0.0.1:${await listen(proxy.server)}`
  })

  after(async () => {
    for (const server of [files, tls, proxy?.server]) {
      server?.closeAllConnections()
      await new Promise((resolve) => (server?.listening ? server.close(resolve) : resolve(undefined)))
    }
    await rm(dir, {recursive: true, force: true})
  })

  const download = async (url: string, env: Record<string, string>) => {
    proxy.seen = []
    const dest = join(dir, `file-${randomBytes(4).toString('hex')}`)
    const result = await runChild(DOWNLOAD, [url, dest, sha256], env)
    assert.doesNotMatch(result.err, /network guard/)
    return {...result, arrived: result.ok ? await readFile(dest) : undefined}
  }

  it('sends an http:// download to HTTP_PROXY as a proxy request; the file arrives verified', async () => {
    const result = await download(`http://${FAKE_HOST}/release/file.bin`, {HTTP_PROXY: proxyUrl})
    assert.ok(result.ok, result.out + result.err)
    assert.deepEqual(proxy.seen, [`GET http://${FAKE_HOST}/release/file.bin`])
    assert.deepEqual(result.arrived, content)
  })

  it('tunnels an https:// download through https_proxy with CONNECT', async (t) => {
    if (!caFile) return t.skip('openssl is not available to make a certificate')
    const result = await download(`https://${FAKE_HOST}/release/file.bin`, {https_proxy: proxyUrl, NODE_EXTRA_CA_CERTS: caFile})
    assert.ok(result.ok, result.out + result.err)
    assert.deepEqual(proxy.seen, [`CONNECT ${FAKE_HOST}:443`])
    assert.deepEqual(result.arrived, content)
  })

  it('goes direct to a host NO_PROXY names, or to any with *', async () => {
    // 0.0.0.0 reaches this host, yet is no loopback name, which would be direct anyway.
    const result = await download(`http://0.0.0.0:${filesPort}/release/file.bin`, {HTTP_PROXY: proxyUrl, no_proxy: 'example.org, 0.0.0.0'})
    assert.ok(result.ok, result.out + result.err)
    assert.deepEqual(proxy.seen, [])
    const all = await download(`http://0.0.0.0:${filesPort}/release/file.bin`, {HTTP_PROXY: proxyUrl, NO_PROXY: 'example.org,*'})
    assert.ok(all.ok, all.out + all.err)
    assert.deepEqual(proxy.seen, [])
    const proxied = await download(`http://0.0.0.0:${filesPort}/release/file.bin`, {HTTP_PROXY: proxyUrl})
    assert.ok(proxied.ok, proxied.out + proxied.err)
    assert.deepEqual(proxy.seen, [`GET http://0.0.0.0:${filesPort}/release/file.bin`])
  })

  it('never sends loopback through the proxy', async () => {
    const result = await download(`http://127.0.0.1:${filesPort}/release/file.bin`, {HTTP_PROXY: proxyUrl})
    assert.ok(result.ok, result.out + result.err)
    assert.deepEqual(proxy.seen, [])
  })

  it('changes nothing without proxy variables: undici is not even loaded', async () => {
    const result = await download(`http://127.0.0.1:${filesPort}/release/file.bin`, {})
    assert.ok(result.ok, result.out + result.err)
    assert.match(result.out, /undici loaded: false/)
  })

  it('names the proxy in the hint when it cannot be reached', async () => {
    const closed = createServer()
    const port = await listen(closed)
    await new Promise((resolve) => closed.close(resolve))
    const result = await download(`http://${FAKE_HOST}/release/file.bin`, {HTTP_PROXY: `http://127.0.0.1:${port}`})
    assert.equal(result.ok, false)
    assert.match(result.out, new RegExp(`failed: cannot download http://${FAKE_HOST}/release/file.bin: .*ECONNREFUSED`))
    assert.match(result.out, /downloads go through the proxy in HTTPS_PROXY or HTTP_PROXY/)
  })

  it('routes plugins’ own fetch through the proxy once the CLI set it up', async () => {
    proxy.seen = []
    const result = await runChild(PLUGIN_FETCH, [`http://${FAKE_HOST}/release/file.bin`], {HTTP_PROXY: proxyUrl})
    assert.ok(result.ok, result.out + result.err)
    assert.equal(result.out.trim(), `200 ${content.length}`)
    assert.deepEqual(proxy.seen, [`GET http://${FAKE_HOST}/release/file.bin`])
  })
})
