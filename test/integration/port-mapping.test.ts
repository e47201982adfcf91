/**
 * [[port-mapping]] on real nodes (issue 13, item 4): a host port forwarded to a NodePort on the first
 * worker. A client in a network namespace of its own (a veth pair on a /30 of 198.18.0.0/15 that no
 * address or route of this host overlaps: a fixed range could take the host's own gateway) and a
 * client on the host (127.0.0.1) reach a busybox httpd through the host port; stop removes the
 * forwarding rules, start puts them back, destroy leaves none. Isolated cluster (egress = false).
 *
 *   node --test --test-concurrency=1 --test-reporter=spec test/integration/port-mapping.test.ts
 */
import assert from 'node:assert/strict'
import {createServer} from 'node:net'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {cidrsOverlap, parseCidr} from '../../dist/net/cidr.js'
import {
  CREATE_TIMEOUT,
  MINUTE,
  RUN_ID,
  SKIP_REASON,
  explain,
  fixtureBundle,
  log,
  runProgram,
  seconds,
  useTestCluster,
  waitFor,
} from './helpers.ts'

const NODE_PORT = 30080
/** The client's link: host side .1, namespace side .2 of a free /30 (chosen before any address is added). */
let link = {host: '', ns: '', prefix: 30}
const BODY = 'hello through the host port'
const NETNS = `kst-${RUN_ID}-pm`
const HOST_VETH = `kst${RUN_ID}pmh`
const NS_VETH = `kst${RUN_ID}pmn`

/** A TCP port nothing on this host listens on. */
async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen({port: 0, host: '0.0.0.0'}, resolve))
  const port = (server.address() as {port: number}).port
  await new Promise((resolve) => server.close(resolve))
  return port
}

const sh = (script: string) => runProgram('sh', ['-c', script], {timeoutMs: MINUTE})

/** A /30 in 198.18.0.0/15 (set aside for benchmarks) that overlaps none of the host's addresses and routes. */
async function freeLink(): Promise<typeof link> {
  const listed = await sh("ip -4 -o addr show | awk '{print $4}'; ip -4 route show table all | awk '{print $1\" \"$2}'")
  const used = listed.stdout
    .split(/\s+/)
    .map((word) => parseCidr(word.includes('/') ? word : `${word}/32`))
    .filter((cidr) => cidr !== undefined)
  for (let third = 0; third < 256; third++) {
    const candidate = parseCidr(`198.18.${third}.0/30`)!
    if (!used.some((cidr) => cidrsOverlap(cidr, candidate))) return {host: `198.18.${third}.1`, ns: `198.18.${third}.2`, prefix: 30}
  }
  throw new Error('no free /30 in 198.18.0.0/16 for the client namespace')
}

const WEB = (node: string) =>
  JSON.stringify({
    apiVersion: 'v1',
    kind: 'List',
    items: [
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {name: 'web', labels: {app: 'web'}},
        spec: {
          nodeName: node,
          terminationGracePeriodSeconds: 1,
          containers: [
            {
              name: 'web',
              image: 'docker.io/library/busybox:1.35',
              imagePullPolicy: 'Never',
              command: ['sh', '-c', `mkdir -p /www && echo "${BODY}" > /www/index.html && exec httpd -f -p 8080 -h /www`],
            },
          ],
        },
      },
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: {name: 'web'},
        spec: {type: 'NodePort', selector: {app: 'web'}, ports: [{port: 80, targetPort: 8080, nodePort: NODE_PORT}]},
      },
    ],
  })

describe('[[port-mapping]]: a host port to a NodePort (2 nodes, isolated)', {skip: SKIP_REASON}, () => {
  let hostPort: number
  before(async () => {
    hostPort = await freePort()
    link = await freeLink()
    await sh(`ip netns del ${NETNS} 2>/dev/null; ip link del ${HOST_VETH} 2>/dev/null; true`)
    const made = await sh(
      [
        `ip netns add ${NETNS}`,
        `ip link add ${HOST_VETH} type veth peer name ${NS_VETH}`,
        `ip link set ${NS_VETH} netns ${NETNS}`,
        `ip addr add ${link.host}/${link.prefix} dev ${HOST_VETH}`,
        `ip link set ${HOST_VETH} up`,
        `ip -n ${NETNS} addr add ${link.ns}/${link.prefix} dev ${NS_VETH}`,
        `ip -n ${NETNS} link set ${NS_VETH} up`,
        `ip -n ${NETNS} link set lo up`,
        `ip -n ${NETNS} route add default via ${link.host}`,
      ].join(' && '),
    )
    assert.equal(made.code, 0, explain('the client network namespace', made))
  })
  after(async () => {
    await sh(`ip netns del ${NETNS} 2>/dev/null; ip link del ${HOST_VETH} 2>/dev/null; true`)
  })

  const cluster = useTestCluster('p', {
    label: 'ports',
    nodes: 2,
    extra: () => `\n[[port-mapping]]\nhost-port = ${hostPort}\nnode-port = ${NODE_PORT}\n`,
  })

  const kubectl = async (args: string[], input?: string) =>
    runProgram(
      join(await fixtureBundle(), 'bin', 'kubectl'),
      [`--kubeconfig=${join(cluster.cli.clusterDir, 'admin.conf')}`, '--request-timeout=20s', ...args],
      {
        timeoutMs: MINUTE,
        input,
      },
    )
  /** GETs the page from the namespace (or the host) until it answers; the body, or undefined. */
  const fetchThrough = async (from: 'netns' | 'host', timeoutMs: number): Promise<string | undefined> => {
    const url = from === 'netns' ? `http://${link.host}:${hostPort}/` : `http://127.0.0.1:${hostPort}/`
    const prefix = from === 'netns' ? `ip netns exec ${NETNS} ` : ''
    let body: string | undefined
    await waitFor(
      async () => {
        // busybox's wget -T crashes; timeout bounds it instead.
        const got = await sh(`${prefix}timeout 5 busybox wget -q -O - ${url}`)
        body = got.code === 0 ? got.stdout.trim() : undefined
        return body !== undefined
      },
      timeoutMs,
      1000,
    )
    return body
  }
  const mappingRules = async () => (await sh(`iptables-save | grep -c -- '--dport ${hostPort} ' || true`)).stdout.trim()

  it('up, then a NodePort Service for a busybox httpd on the first worker', {timeout: CREATE_TIMEOUT}, async () => {
    const started = Date.now()
    await cluster.cli.ok(['up', '--config', cluster.config], CREATE_TIMEOUT)
    log(`up in ${seconds(Date.now() - started)}`)
    const applied = await kubectl(['apply', '-f', '-'], WEB(cluster.machines[1]))
    assert.equal(applied.code, 0, explain('kubectl apply', applied))
    const ready = await kubectl(['wait', '--for=condition=Ready', 'pod/web', '--timeout=180s'])
    assert.equal(ready.code, 0, explain('kubectl wait', ready))
  })

  it('a client in another network namespace reaches it through the host port', {timeout: 3 * MINUTE}, async () => {
    assert.equal(await fetchThrough('netns', 2 * MINUTE), BODY)
  })

  it('a client on the host reaches it through 127.0.0.1 and the host port', {timeout: 2 * MINUTE}, async () => {
    assert.equal(await fetchThrough('host', MINUTE), BODY)
  })

  it('stop removes the forwarding, start brings it back', {timeout: 15 * MINUTE}, async () => {
    await cluster.cli.ok(['stop'], 5 * MINUTE)
    assert.equal(await mappingRules(), '0', 'no rule for the host port after stop')
    await cluster.cli.ok(['start'], 12 * MINUTE)
    assert.notEqual(await mappingRules(), '0', 'the host port is forwarded again after start')
    assert.equal(await fetchThrough('netns', 3 * MINUTE), BODY)
  })

  it('destroy leaves no rule for the host port', {timeout: 5 * MINUTE}, async () => {
    await cluster.cli.ok(['destroy'], 5 * MINUTE)
    assert.equal(await mappingRules(), '0')
  })
})
