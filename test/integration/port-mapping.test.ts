/**
 * [[port-mapping]] on real nodes (issue 13, item 4): a host port forwarded to a NodePort on the first
 * worker. A client in a network namespace of its own (a veth pair on 192.0.2.0/30, TEST-NET-1) and a
 * client on the host (127.0.0.1) reach a busybox httpd through the host port; stop removes the
 * forwarding rules, start puts them back, destroy leaves none. Isolated cluster (egress = false).
 *
 *   node --test --test-concurrency=1 --test-reporter=spec test/integration/port-mapping.test.ts
 */
import assert from 'node:assert/strict'
import {createServer} from 'node:net'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

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
    await sh(`ip netns del ${NETNS} 2>/dev/null; ip link del ${HOST_VETH} 2>/dev/null; true`)
    const made = await sh(
      [
        `ip netns add ${NETNS}`,
        `ip link add ${HOST_VETH} type veth peer name ${NS_VETH}`,
        `ip link set ${NS_VETH} netns ${NETNS}`,
        `ip addr add 192.0.2.1/30 dev ${HOST_VETH}`,
        `ip link set ${HOST_VETH} up`,
        `ip -n ${NETNS} addr add 192.0.2.2/30 dev ${NS_VETH}`,
        `ip -n ${NETNS} link set ${NS_VETH} up`,
        `ip -n ${NETNS} link set lo up`,
        `ip -n ${NETNS} route add default via 192.0.2.1`,
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
    const url = from === 'netns' ? `http://192.0.2.1:${hostPort}/` : `http://127.0.0.1:${hostPort}/`
    const prefix = from === 'netns' ? `ip netns exec ${NETNS} ` : ''
    let body: string | undefined
    await waitFor(
      async () => {
        const got = await sh(`${prefix}busybox wget -q -O - -T 3 ${url}`)
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
