/**
 * Issue 13, items 2 and 3, as pure logic: the machines of an HA cluster with a registry, the checks of
 * control-planes and [registry], the haproxy and registry configs, the KEP-1755 ConfigMap, kubeadm's
 * HA documents, the runtimes' registry files and the registry's host port rules.
 */
import assert from 'node:assert/strict'
import {dirname, join} from 'node:path'
import {describe, it} from 'node:test'
import {fileURLToPath} from 'node:url'

import {
  infraRefusal,
  registryHostingConfigMap,
  renderHaproxyConfig,
  renderRegistryConfig,
  withInfraPackages,
} from '../../../dist/cluster/infra.js'
import {resolveDefinition, serializeCluster, parseToml} from '../../../dist/config/definition.js'
import {renderDiscoveryKubeconfig, renderInitConfig, renderJoinConfig} from '../../../dist/kubernetes/kubeadm-config.js'
import {apiServerHost, planMachines, registryAddress, withRegistryAddress} from '../../../dist/node/names.js'
import {clusterRules} from '../../../dist/node/network.js'
import {containerd, registryHostsFiles} from '../../../plugins/runtime-containerd/dist/index.js'
import {daemonJson} from '../../../plugins/runtime-docker/dist/index.js'
import {registryConfig} from '../../../plugins/runtime-crio/dist/index.js'
import {golden} from '../helpers/golden.ts'

const GOLDEN = join(dirname(fileURLToPath(import.meta.url)), '../../fixtures/golden')
const KEY = 'a'.repeat(64)
const CA_HASH = `sha256:${'b'.repeat(64)}`
const SOCKET = 'unix:///run/containerd/containerd.sock'

/** A created cluster: the definition resolved, its machines planned and the registry's address filled in. */
async function created(extra: Record<string, unknown> = {}) {
  const definition = await resolveDefinition(
    {
      'cluster-name': 'ha',
      token: 'abcdef.0123456789abcdef',
      nodes: 4,
      'control-planes': 3,
      network: {egress: false, 'cluster-subnet': '10.22.9.0/24'},
      ...extra,
    },
    'test',
    {},
    {checkPaths: false},
  )
  return withRegistryAddress({...definition, machines: planMachines(definition)})
}

const refused = async (raw: Record<string, unknown>, message: RegExp) =>
  assert.rejects(
    resolveDefinition({'cluster-name': 'ha', network: {egress: false}, ...raw}, 'kspawn.toml', {}, {checkPaths: true}),
    message,
  )

describe('HA and registry machines', () => {
  it('control planes cp, cp2, cp3, then workers, then the load balancer at .254 and the registry at .253', async () => {
    const cluster = await created({registry: {enabled: true}})
    assert.deepEqual(
      cluster.machines.map((m) => [m.name, m.role, m.ip]),
      [
        ['ks-ha-cp', 'control-plane', '10.22.9.2'],
        ['ks-ha-cp2', 'control-plane', '10.22.9.3'],
        ['ks-ha-cp3', 'control-plane', '10.22.9.4'],
        ['ks-ha-w1', 'worker', '10.22.9.5'],
        ['ks-ha-lb', 'load-balancer', '10.22.9.254'],
        ['ks-ha-reg', 'registry', '10.22.9.253'],
      ],
    )
    assert.equal(registryAddress(cluster), '10.22.9.253:5000')
    assert.deepEqual(apiServerHost(cluster), cluster.machines[4])
  })

  it('one control plane and no registry: no infrastructure machine, the API server is the control plane', async () => {
    const cluster = await created({'control-planes': 1, nodes: 2})
    assert.deepEqual(
      cluster.machines.map((m) => m.name),
      ['ks-ha-cp', 'ks-ha-w1'],
    )
    assert.equal(apiServerHost(cluster).name, 'ks-ha-cp')
    assert.equal(registryAddress(cluster), undefined)
  })

  it('a saved cluster reads back with its roles, control planes and registry (address included)', async () => {
    const cluster = await created({registry: {enabled: true, port: 5917}})
    const again = await resolveDefinition(parseToml(serializeCluster(cluster), 'saved'), 'saved', {}, {checkPaths: false})
    assert.equal(again.controlPlanes, 3)
    assert.deepEqual(again.registry, {enabled: true, port: 5917, address: '10.22.9.253:5917'})
    assert.deepEqual(again.machines, cluster.machines)
  })
})

describe('control-planes and [registry]: bad input in one line', () => {
  it('control-planes that is even', () =>
    refused({nodes: 4, 'control-planes': 2}, /kspawn\.toml: control-planes = 2 is even: etcd needs a majority/))
  it('control-planes larger than nodes', () =>
    refused({nodes: 2, 'control-planes': 3}, /kspawn\.toml: control-planes = 3 is more than nodes = 2$/))
  it('control-planes changed after create', async () => {
    const cluster = await created()
    const raw = parseToml(serializeCluster(cluster), 'saved')
    await assert.rejects(
      resolveDefinition({...raw, 'control-planes': 5, nodes: 5}, 'kspawn.toml', {}, {checkPaths: false}),
      /control-planes = 5, but the cluster was created with 3/,
    )
  })
  it('a registry added after create', async () => {
    const cluster = await created()
    const raw = parseToml(serializeCluster(cluster), 'saved')
    await assert.rejects(
      resolveDefinition({...raw, registry: {enabled: true}}, 'kspawn.toml', {}, {checkPaths: false}),
      /registry\.enabled = true, but the cluster was created without a registry/,
    )
  })
  it('registry.port that a [[port-mapping]] also uses', () =>
    refused(
      {registry: {enabled: true, port: 8080}, 'port-mapping': [{'host-port': 8080, 'node-port': 30080}]},
      /registry\.port 8080 is also the host-port of a \[\[port-mapping\]\]/,
    ))
  it('registry.dir relative or missing', async () => {
    await refused({registry: {enabled: true, dir: 'data'}}, /registry\.dir "data" is not an absolute path/)
    await refused({registry: {enabled: true, dir: '/nonexistent/ks-registry'}}, /registry\.dir \/nonexistent\/ks-registry does not exist/)
  })
  it('registry.port out of range', () => refused({registry: {enabled: true, port: 70000}}, /registry\.port/))
  it('an image without packages, and a runtime that cannot be pointed at a registry', async () => {
    const cluster = await created({registry: {enabled: true}})
    assert.match(
      infraRefusal(cluster, containerd, {name: 'flatcar', family: 'flatcar'}) ?? '',
      /needs haproxy .* image flatcar \(flatcar\) installs no packages/,
    )
    const plain = {...containerd, configuresRegistry: undefined}
    assert.match(
      infraRefusal(cluster, {...plain, name: 'other'}, {name: 'debian', family: 'debian'}) ?? '',
      /container runtime other cannot be pointed at the cluster's registry/,
    )
    assert.equal(infraRefusal(cluster, containerd, {name: 'debian', family: 'debian'}), undefined)
  })
})

describe('infrastructure configs (golden)', () => {
  it('haproxy: every control plane checked by /healthz over TLS', async () => {
    await golden(join(GOLDEN, 'infra', 'haproxy.cfg'), renderHaproxyConfig(await created()))
  })
  it('the registry: plain HTTP on its port, storage in /var/lib/docker-registry', async () => {
    await golden(join(GOLDEN, 'infra', 'registry-config.yml'), renderRegistryConfig(5917))
  })
  it('the KEP-1755 ConfigMap', async () => {
    await golden(join(GOLDEN, 'infra', 'local-registry-hosting.yaml'), registryHostingConfigMap(await created({registry: {enabled: true}})))
  })
  it('the base image gains haproxy and docker-registry only when the cluster needs them', async () => {
    const ha = withInfraPackages(containerd, await created({registry: {enabled: true}}), 'debian')
    assert.deepEqual(ha.packages.debian?.names, ['containerd', 'runc', 'containernetworking-plugins', 'haproxy', 'docker-registry'])
    assert.equal(withInfraPackages(containerd, await created({'control-planes': 1}), 'debian'), containerd)
  })
})

describe('kubeadm with several control planes (golden)', () => {
  for (const version of ['v1.20.2', 'v1.31.0']) {
    it(`${version}: init through the load balancer with the certificate key, and a control plane's join`, async () => {
      const cluster = {...(await created()), kubernetesVersion: version}
      const [cp, , , , lb] = cluster.machines
      const init = renderInitConfig({
        cluster,
        node: cp,
        controlPlaneIp: lb.ip,
        controlPlaneName: lb.name,
        certificateKey: KEY,
        criSocket: SOCKET,
      })
      assert.match(init, /controlPlaneEndpoint: 10\.22\.9\.254:6443/)
      await golden(join(GOLDEN, `${version}-ha`, 'init.yaml'), init)
      const join_ = cp2Join(cluster)
      assert.match(join_, /controlPlane:\n {2}localAPIEndpoint:\n {4}advertiseAddress: 10\.22\.9\.3/)
      await golden(join(GOLDEN, `${version}-ha`, 'join-control-plane.yaml'), join_)
    })
  }
  it('a control plane cannot join without the key, nor a machine that runs no kubelet', async () => {
    const cluster = await created()
    const [, cp2, , , lb] = cluster.machines
    assert.throws(
      () => renderJoinConfig({cluster, node: cp2, controlPlaneIp: lb.ip, criSocket: SOCKET, caCertHash: CA_HASH}),
      /certificate key/,
    )
    assert.throws(
      () => renderJoinConfig({cluster, node: lb, controlPlaneIp: lb.ip, criSocket: SOCKET, caCertHash: CA_HASH}),
      /runs no kubelet/,
    )
  })
  it('control planes without workers are not tainted', async () => {
    const cluster = await created({nodes: 3})
    const init = renderInitConfig({
      cluster,
      node: cluster.machines[0],
      controlPlaneIp: cluster.machines[3].ip,
      certificateKey: KEY,
      criSocket: SOCKET,
    })
    assert.match(init, /taints: \[\]/)
  })
})

describe("runtimes' registry files", () => {
  const registry = {address: '10.22.9.253:5917', port: 5917}
  it('containerd: config_path, and hosts.toml for the address and for localhost:PORT', async () => {
    const files = registryHostsFiles(registry)
    assert.deepEqual(
      files.map((f) => f.path),
      ['/etc/containerd/certs.d/10.22.9.253:5917/hosts.toml', '/etc/containerd/certs.d/localhost:5917/hosts.toml'],
    )
    await golden(join(GOLDEN, 'infra', 'containerd-hosts.toml'), files[0].content)
    const variant = containerd.variant!({family: 'debian', registry} as never)
    assert.deepEqual(
      variant.files!.map((f) => f.path),
      ['/etc/containerd/config.toml', ...files.map((f) => f.path)],
    )
  })
  it('docker: the registry among the insecure registries', () => {
    const json = JSON.parse(
      daemonJson({
        kubernetes: {cgroupDriver: 'systemd'},
        host: {capSysResource: true},
        cluster: {registry: {enabled: true, port: 5917, address: registry.address}},
      } as never),
    )
    assert.deepEqual(json['insecure-registries'], [registry.address])
    assert.equal(
      JSON.parse(daemonJson({kubernetes: {cgroupDriver: 'systemd'}, host: {capSysResource: true}} as never))['insecure-registries'],
      undefined,
    )
  })
  it('cri-o: an insecure [[registry]] in registries.conf.d', () => {
    assert.match(
      registryConfig({cluster: {registry: {enabled: true, port: 5917, address: registry.address}}} as never),
      /\[\[registry\]\]\nlocation = "10\.22\.9\.253:5917"\ninsecure = true/,
    )
    assert.doesNotMatch(registryConfig({cluster: {}} as never), /\[\[registry\]\]/)
  })
})

describe("the registry's host port", () => {
  it('forwards 127.0.0.1:PORT only (no PREROUTING) to the registry machine', async () => {
    const rules = clusterRules(await created({registry: {enabled: true, port: 5917}})).map(
      (r) => `${r.table} ${r.chain} ${r.spec.join(' ')}`,
    )
    const tag = '-m comment --comment kube-spawn:ha'
    assert.ok(!rules.some((r) => r.startsWith('nat PREROUTING')), rules.join('\n'))
    assert.ok(
      rules.includes(
        `nat OUTPUT -d 127.0.0.1 -p tcp -m addrtype --dst-type LOCAL --dport 5917 ${tag} -j DNAT --to-destination 10.22.9.253:5917`,
      ),
      rules.join('\n'),
    )
  })
  it('a registry.port in use on the host is refused in one line', async () => {
    const {createServer} = await import('node:net')
    const server = createServer()
    await new Promise<void>((resolve) => server.listen({port: 0, host: '127.0.0.1'}, resolve))
    const port = (server.address() as {port: number}).port
    try {
      const {assertHostPortsFree} = await import('../../../dist/node/network.js')
      await assert.rejects(
        assertHostPortsFree(await created({registry: {enabled: true, port}})),
        new RegExp(`: host port ${port}/tcp of registry\\.port is already taken on this host$`),
      )
    } finally {
      server.close()
    }
  })
})

/** The second control plane's join of an HA cluster (machines cp, cp2, cp3, a worker, the load balancer). */
function cp2Join(cluster: Awaited<ReturnType<typeof created>>, extra: Partial<Parameters<typeof renderJoinConfig>[0]> = {}): string {
  const [, cp2, , , lb] = cluster.machines
  return renderJoinConfig({
    cluster,
    node: cp2,
    controlPlaneIp: lb.ip,
    certificateKey: KEY,
    criSocket: SOCKET,
    caCertHash: CA_HASH,
    ...extra,
  })
}

describe('file discovery (issue 14: joins do not wait for the signed cluster-info)', () => {
  it('the join names the discovery file and the bootstrap token; the file holds the CA and the API server', async () => {
    const cluster = await created()
    const lb = cluster.machines[4]
    const text = cp2Join(cluster, {discoveryFile: '/etc/kube-spawn/discovery.conf'})
    assert.match(
      text,
      /discovery:\n {2}file:\n {4}kubeConfigPath: \/etc\/kube-spawn\/discovery\.conf\n {2}tlsBootstrapToken: abcdef\.0123456789abcdef\n/,
    )
    const kubeconfig = renderDiscoveryKubeconfig(cluster, '-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n', lb.ip)
    assert.match(kubeconfig, /server: https:\/\/10\.22\.9\.254:6443/)
    assert.match(kubeconfig, /certificate-authority-data: LS0tLS1CRUdJTi/)
    assert.match(kubeconfig, /current-context: discovery/)
    assert.match(kubeconfig, /user:\n {4}token: abcdef\.0123456789abcdef\n/)
  })

  it('gives discovery the time a join begun during kubeadm init may wait, where each kubeadm API keeps it', async () => {
    const cluster = await created()
    const render = (kubernetesVersion: string) =>
      cp2Join({...cluster, kubernetesVersion}, {discoveryFile: '/etc/kube-spawn/discovery.conf', discoveryTimeoutSeconds: 600})
    assert.match(render('v1.20.2'), /\n {2}tlsBootstrapToken: abcdef\.0123456789abcdef\n {2}timeout: 600s\n/)
    assert.doesNotMatch(render('v1.20.2'), /timeouts:/)
    assert.match(render('v1.31.0'), /\ntimeouts:\n {2}discovery: 600s\n/)
    assert.doesNotMatch(render('v1.31.0'), / {2}timeout: /)
  })
})
