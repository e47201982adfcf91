/**
 * Issue 13, items 2 and 3, on real nodes, in one cluster (one base image build, one boot): three
 * control planes and a worker behind a haproxy load-balancer machine, and the cluster's own registry
 * (Debian's docker-registry) on a machine of its own, its storage in a directory of the test's.
 *
 * - up: 4 nodes Ready; admin.conf names the load balancer; the kube-public/local-registry-hosting ConfigMap.
 * - An image built here (mkimage.py) is pushed with skopeo to localhost:PORT, as a user would; a pod
 *   pulls it by the registry's address with imagePullPolicy Always.
 * - The first control plane (the one kubeadm init ran on) is powered off: kubectl still answers through
 *   the load balancer, and a new pod is scheduled and pulled. start brings the node back.
 * - stop and start of the whole cluster (kind's HA restart is broken, kind #1689): 4 Ready, 3 etcd
 *   members started, and new pods pull the image again without a new push, by the registry's address
 *   and by localhost:PORT (containerd's hosts.toml alias).
 * - destroy leaves nothing, but the registry's storage dir is the user's and keeps the image.
 * Isolated (egress = false), offline bundle.
 *
 *   node --test --test-concurrency=1 --test-reporter=spec test/integration/ha-registry.test.ts
 */
import assert from 'node:assert/strict'
import {existsSync} from 'node:fs'
import {request} from 'node:https'
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {
  CREATE_TIMEOUT,
  MINUTE,
  NO_RESIDUE,
  SKIP_REASON,
  explain,
  fixtureBundle,
  log,
  messageImage,
  nspawnProcesses,
  runProgram,
  seconds,
  useTestCluster,
  waitFor,
} from './helpers.ts'

/** The names of etcd's started members (an unstarted member has no name yet), from its v3 HTTP gateway. */
async function etcdMembers(pki: string, ip: string): Promise<string[]> {
  const [ca, cert, key] = await Promise.all(
    ['ca.crt', 'healthcheck-client.crt', 'healthcheck-client.key'].map((f) => readFile(join(pki, f))),
  )
  const body = await new Promise<string>((resolve, reject) => {
    const req = request(`https://${ip}:2379/v3/cluster/member/list`, {method: 'POST', ca, cert, key, timeout: 20_000}, (res) => {
      let text = ''
      res.on('data', (chunk) => (text += chunk))
      res.on('end', () => resolve(text))
    })
    req.on('error', reject)
    req.end('{}')
  })
  return ((JSON.parse(body) as {members?: Array<{name?: string}>}).members ?? []).map((m) => m.name ?? '').filter(Boolean)
}

/** Not 5000: a registry port nobody else on a CI host is likely to use. */
const REGISTRY_PORT = 5917
const IMAGE = 'ks/hello:1'
const BODY = 'pulled from the cluster registry'

describe('HA control planes and the cluster registry (3 control planes + 1 worker, containerd, isolated)', {skip: SKIP_REASON}, () => {
  let storage: string
  before(async () => {
    storage = await mkdtemp(join(tmpdir(), 'ks-registry-storage-'))
  })
  after(async () => {
    if (storage) await rm(storage, {recursive: true, force: true})
  })

  const cluster = useTestCluster('h', {
    label: 'ha',
    nodes: 4,
    kubeconfig: true,
    machines: (name) => ['cp', 'cp2', 'cp3', 'w1', 'lb', 'reg'].map((m) => `ks-${name}-${m}`),
    // Registered before this, the storage dir exists when the definition is written.
    extra: () => `
[registry]
enabled = true
port = ${REGISTRY_PORT}
dir = "${storage}"
`,
  })
  const machine = (short: string) => `ks-${cluster.name}-${short}`
  let registry = ''

  const kubectl = async (args: string[], input?: string) =>
    runProgram(
      join(await fixtureBundle(), 'bin', 'kubectl'),
      [`--kubeconfig=${join(cluster.cli.clusterDir, 'admin.conf')}`, '--request-timeout=20s', ...args],
      {
        timeoutMs: MINUTE,
        ...(input === undefined ? {} : {input}),
      },
    )

  /** A pod on the worker that runs the pushed image, pulled afresh (Always), by the registry's address unless `image` names it otherwise. */
  const runPulledPod = async (name: string, image = `${registry}/${IMAGE}`) => {
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {name},
      spec: {terminationGracePeriodSeconds: 1, containers: [{name: 'hello', image, imagePullPolicy: 'Always'}]},
    }
    const applied = await kubectl(['apply', '-f', '-'], JSON.stringify(pod))
    assert.equal(applied.code, 0, explain('kubectl apply', applied))
    let phase = ''
    const running = await waitFor(
      async () => {
        const got = await kubectl(['get', 'pod', name, '-o', 'jsonpath={.status.phase} {.spec.nodeName}'])
        phase = got.stdout.trim()
        return phase.startsWith('Running')
      },
      4 * MINUTE,
      2000,
    )
    const describe = running ? undefined : await kubectl(['describe', 'pod', name])
    assert.ok(running, `pod ${name} is not Running (${phase}): ${describe?.stdout.slice(-1500)}`)
    const logs = await kubectl(['logs', name])
    assert.equal(logs.stdout.trim(), BODY, explain('kubectl logs', logs))
    return phase.split(' ')[1]
  }

  const readyNodes = async () => {
    const nodes = await kubectl(['get', 'nodes', '--no-headers'])
    return nodes.stdout.split('\n').filter((l) => / Ready /.test(l)).length
  }

  it(
    'up: 3 control planes and a worker Ready, the API server behind the load balancer, the registry answering',
    {timeout: CREATE_TIMEOUT},
    async () => {
      const started = Date.now()
      const up = await cluster.cli.run(['up', '--config', cluster.config, '--control-planes', '3'], CREATE_TIMEOUT)
      assert.equal(up.code, 0, explain('kube-spawn up', up))
      log(`up in ${seconds(Date.now() - started)}`)
      const status = await cluster.cli.status()
      const roles = Object.fromEntries(status.machines.map((m) => [m.name, m.role]))
      assert.deepEqual(roles, {
        [machine('cp')]: 'control-plane',
        [machine('cp2')]: 'control-plane',
        [machine('cp3')]: 'control-plane',
        [machine('w1')]: 'worker',
        [machine('lb')]: 'load-balancer',
        [machine('reg')]: 'registry',
      })
      const lb = status.machines.find((m) => m.role === 'load-balancer')!
      const reg = status.machines.find((m) => m.role === 'registry')!
      assert.match(lb.ip, /\.254$/)
      registry = `${reg.ip}:${REGISTRY_PORT}`
      const admin = await readFile(join(cluster.cli.clusterDir, 'admin.conf'), 'utf8')
      assert.match(admin, new RegExp(`server: https://${lb.ip.replaceAll('.', '\\.')}:6443`), 'admin.conf names the load balancer')
      assert.equal(await readyNodes(), 4)
      const hosting = await kubectl([
        '-n',
        'kube-public',
        'get',
        'configmap',
        'local-registry-hosting',
        '-o',
        'jsonpath={.data.localRegistryHosting\\.v1}',
      ])
      assert.match(hosting.stdout, new RegExp(`host: "?localhost:${REGISTRY_PORT}"?`), explain('get configmap', hosting))
      assert.match(hosting.stdout, new RegExp(`hostFromContainerRuntime: "?${registry.replaceAll('.', '\\.')}"?`))
      const haproxy = await cluster.cli.exec(machine('lb'), ['systemctl', 'is-active', 'haproxy'])
      assert.equal(haproxy.stdout.trim(), 'active', explain('haproxy', haproxy))
      // A Kubernetes node runs neither haproxy nor the registry; the infrastructure machines run no container runtime.
      const masked = await cluster.cli.exec(machine('w1'), ['systemctl', 'is-enabled', 'haproxy', 'docker-registry'])
      assert.match(masked.stdout, /^masked\nmasked$/m, explain('is-enabled in w1', masked))
      const runtime = await cluster.cli.exec(machine('reg'), ['systemctl', 'is-enabled', 'containerd'])
      assert.equal(runtime.stdout.trim(), 'masked', explain('is-enabled containerd in reg', runtime))
    },
  )

  it(
    'an image pushed with skopeo to localhost:PORT runs in a pod that pulls it with imagePullPolicy Always',
    {timeout: 8 * MINUTE},
    async () => {
      const work = await mkdtemp(join(tmpdir(), 'ks-registry-image-'))
      try {
        const archive = join(work, 'hello.tar')
        await messageImage(archive, IMAGE, BODY)
        const push = await runProgram(
          'skopeo',
          [
            '--insecure-policy',
            'copy',
            '--dest-tls-verify=false',
            `docker-archive:${archive}`,
            `docker://localhost:${REGISTRY_PORT}/${IMAGE}`,
          ],
          {timeoutMs: 2 * MINUTE},
        )
        assert.equal(push.code, 0, explain('skopeo copy', push))
        const catalog = await fetch(`http://${registry}/v2/_catalog`).then((r) => r.json())
        assert.deepEqual(catalog, {repositories: ['ks/hello']})
      } finally {
        await rm(work, {recursive: true, force: true})
      }
      assert.equal(await runPulledPod('pulled-1'), machine('w1'))
    },
  )

  it(
    'with the first control plane powered off, kubectl answers through the load balancer and a new pod is scheduled',
    {timeout: 10 * MINUTE},
    async () => {
      const off = await cluster.cli.exec(machine('cp'), ['systemctl', 'poweroff'])
      log(`poweroff: ${off.code}`)
      const gone = await waitFor(async () => !(await nspawnProcesses([machine('cp')])).length, 2 * MINUTE, 500)
      assert.ok(gone, `${machine('cp')} is still running after systemctl poweroff`)
      const started = Date.now()
      const answered = await waitFor(async () => (await kubectl(['get', 'nodes'])).code === 0, 2 * MINUTE, 2000)
      assert.ok(answered, 'kubectl did not answer through the load balancer with the first control plane off')
      log(`kubectl answered ${seconds(Date.now() - started)} after the power-off`)
      // The scheduler's leader may have run on the node that went away: a new leader takes over within its lease.
      assert.equal(await runPulledPod('pulled-2'), machine('w1'))
    },
  )

  it('start boots the stopped control plane again, and every node is Ready', {timeout: 10 * MINUTE}, async () => {
    const start = await cluster.cli.run(['start'], 10 * MINUTE)
    assert.equal(start.code, 0, explain('kube-spawn start', start))
    assert.equal(await readyNodes(), 4)
  })

  it(
    'stop and start of the whole cluster: 4 Ready, 3 etcd members started, the image is still in the registry',
    {timeout: 15 * MINUTE},
    async () => {
      const status = {cp2: (await cluster.cli.status()).machines.find((m) => m.name === machine('cp2'))!.ip}
      const stop = await cluster.cli.run(['stop'], 5 * MINUTE)
      assert.equal(stop.code, 0, explain('kube-spawn stop', stop))
      assert.deepEqual(await nspawnProcesses(cluster.machines), [])
      const started = Date.now()
      const start = await cluster.cli.run(['start'], 10 * MINUTE)
      assert.equal(start.code, 0, explain('kube-spawn start', start))
      log(`restart in ${seconds(Date.now() - started)}`)
      assert.equal(await readyNodes(), 4)
      // The bundle's etcd image has no etcdctl: ask etcd's own HTTP gateway, with cp2's client certificate.
      const members = await etcdMembers(
        join(cluster.cli.clusterDir, 'nodes', machine('cp2'), 'upper', 'etc/kubernetes/pki/etcd'),
        status.cp2,
      )
      assert.deepEqual(members.sort(), [machine('cp'), machine('cp2'), machine('cp3')], 'three started etcd members')
      assert.equal(await runPulledPod('pulled-3'), machine('w1'))
      // containerd's hosts.toml for localhost:PORT sends the host's name for the registry to it too.
      assert.equal(await runPulledPod('pulled-4', `localhost:${REGISTRY_PORT}/${IMAGE}`), machine('w1'))
    },
  )

  it('destroy leaves nothing of the cluster, and the registry storage dir keeps the image', {timeout: 5 * MINUTE}, async () => {
    const destroyed = await cluster.cli.run(['destroy'], 5 * MINUTE)
    assert.equal(destroyed.code, 0, explain('kube-spawn destroy', destroyed))
    assert.deepEqual(await cluster.residue(), NO_RESIDUE)
    assert.ok(existsSync(join(storage, 'docker/registry/v2/repositories/ks/hello')), 'the image is still in the storage dir')
  })
})
