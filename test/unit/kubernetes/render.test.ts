import assert from 'node:assert/strict'
import {execFileSync, spawnSync} from 'node:child_process'
import {existsSync} from 'node:fs'
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'
import {describe, it} from 'node:test'
import {fileURLToPath} from 'node:url'

import {fixtureBinary} from '../helpers/fixture-bundle.ts'

import {parse} from 'yaml'

import {renderCniConflist} from '../../../dist/kubernetes/cni.js'
import {
  KUBELET_CLIENT_PEM,
  initConfigForNode,
  normalizeCaCertHash,
  renderInitConfig,
  renderJoinConfig,
  renderKubeletKubeconfig,
} from '../../../dist/kubernetes/kubeadm-config.js'
import {kubeSpawnDropIn, kubeadmDropIn, kubeletSystemdFiles, kubeletUnit} from '../../../dist/kubernetes/kubelet-unit.js'
import {renderYaml} from '../../../dist/kubernetes/yaml.js'
import type {NodeFile} from '../../../dist/node/node-files.js'
import {criSocketFor, versionTraits} from '../../../dist/kubernetes/versions.js'
import {golden as goldenFile} from '../helpers/golden.ts'
import type {KubernetesSettings} from '@kube-spawn/sdk'

const GOLDEN = join(dirname(fileURLToPath(import.meta.url)), '../../fixtures/golden')
const SOCKET = 'unix:///run/containerd/containerd.sock'
const CA_HASH = 'sha256:2f6a1c5b3e8d7a9c0b4e6f1d2a3c5e7f9b0d1c2e3f4a5b6c7d8e9f0a1b2c3d4e'
const fixtureKubeadm = fixtureBinary('kubeadm')

type RuntimeConfig = {cgroupPerQos: boolean; failSwapOn: boolean; timeout: string; useLegacyCgroupDriver: boolean}

function cluster(
  version: string,
  overrides: {
    runtimeConfig?: Partial<RuntimeConfig>
    network?: Record<string, string>
    nodes?: number
    kubernetes?: Omit<KubernetesSettings, 'source'>
  } = {},
) {
  return {
    clusterName: 'dev',
    containerRuntime: 'containerd',
    image: 'debian',
    kubernetesVersion: version,
    nodes: overrides.nodes ?? 3,
    token: 'abcdef.0123456789abcdef',
    cni: 'bridge' as const,
    kubernetes: {source: 'https://dl.k8s.io', ...overrides.kubernetes},
    network: {
      subnet: '10.22.0.0/16',
      clusterSubnet: '10.22.0.0/24',
      podCidr: '10.244.0.0/16',
      serviceCidr: '10.96.0.0/12',
      egress: true,
      ...overrides.network,
    },
    bindmount: {readOnly: [], readWrite: []},
    runtimeConfig: {cgroupPerQos: true, failSwapOn: false, timeout: '10m', useLegacyCgroupDriver: true, ...overrides.runtimeConfig},
    pluginConfig: {},
    machines: [],
    state: {initialized: false},
  }
}

const CP = {name: 'ks-dev-cp', ip: '10.22.0.2', role: 'control-plane' as const}
const W1 = {name: 'ks-dev-w1', ip: '10.22.0.3', role: 'worker' as const}

/** Each golden version also exercises different settings, so the branches show in the files. */
const CASES = [
  {version: 'v1.20.2', cluster: cluster('v1.20.2')},
  {version: 'v1.25.0', cluster: cluster('v1.25.0', {runtimeConfig: {useLegacyCgroupDriver: false, cgroupPerQos: false}})},
  {
    version: 'v1.31.0',
    cluster: cluster('v1.31.0', {runtimeConfig: {failSwapOn: true}, network: {podCidr: '10.200.0.0/16', serviceCidr: '10.100.0.0/16'}}),
  },
  // Every [kubernetes] kubeadm setting; the "-custom" cases show where each lands (patches is a kubeadm flag, not in the files).
  {
    version: 'v1.20.2-custom',
    cluster: cluster('v1.20.2', {
      kubernetes: {
        featureGates: {TTLAfterFinished: true, CSIMigration: false, EphemeralContainers: true},
        apiServerExtraArgs: {v: '2', 'audit-log-maxage': '7'},
        controllerManagerExtraArgs: {'terminated-pod-gc-threshold': '100'},
        schedulerExtraArgs: {v: '3'},
        kubeletExtraArgs: {'node-labels': 'tier=dev', 'max-pods': '50', docker: 'unix:///var/run/docker.sock'},
        patches: '/srv/kubeadm-patches',
        configPatches: [
          'kind: ClusterConfiguration\napiServer:\n  timeoutForControlPlane: 8m0s\nnetworking:\n  dnsDomain: dev.local\n',
          'apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nevictionHard:\n  imagefs.inodesFree: null\nsystemReserved:\n  memory: 256Mi\n',
          'kind: JoinConfiguration\nnodeRegistration:\n  ignorePreflightErrors:\n  - Swap\n',
        ],
        kubeProxyMode: 'none',
      },
    }),
  },
  {
    version: 'v1.31.0-custom',
    cluster: cluster('v1.31.0', {
      kubernetes: {
        featureGates: {InPlacePodVerticalScaling: true, SidecarContainers: false},
        apiServerExtraArgs: {'audit-log-maxage': '7'},
        controllerManagerExtraArgs: {'terminated-pod-gc-threshold': '100'},
        schedulerExtraArgs: {v: '3'},
        kubeletExtraArgs: {'node-labels': 'tier=dev'},
        configPatches: [
          'apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\ntimeouts:\n  controlPlaneComponentHealthCheck: 8m0s\n',
          'kind: KubeProxyConfiguration\nnftables:\n  syncPeriod: 30s\n',
          'kind: ClusterConfiguration\ncertificateValidityPeriod: 8760h0m0s\n',
        ],
        kubeProxyMode: 'nftables',
      },
    }),
  },
]

const golden = (version: string, file: string, actual: string) => goldenFile(join(GOLDEN, version, file), actual)

describe('golden kubeadm configs', () => {
  for (const c of CASES) {
    it(`${c.version}: init.yaml and join.yaml`, async () => {
      await golden(c.version, 'init.yaml', renderInitConfig({cluster: c.cluster, node: CP, criSocket: SOCKET}))
      await golden(
        c.version,
        'join.yaml',
        renderJoinConfig({cluster: c.cluster, node: W1, controlPlaneIp: CP.ip, criSocket: SOCKET, caCertHash: CA_HASH}),
      )
    })
  }
})

describe('golden kubeadm configs for docker through the kubelet’s dockershim', () => {
  const DOCKERSHIM = {cniBinDir: '/usr/lib/cni', cniConfDir: '/etc/cni/net.d'}
  const c = cluster('v1.20.2', {runtimeConfig: {useLegacyCgroupDriver: false}})
  it('v1.20.2: criSocket is dockershim’s bare path, the kubelet gets the CNI and sandbox flags and no remote runtime', async () => {
    const init = renderInitConfig({cluster: c, node: CP, criSocket: 'unix:///var/run/dockershim.sock', dockershim: DOCKERSHIM})
    await golden('v1.20.2-dockershim', 'init.yaml', init)
    await golden(
      'v1.20.2-dockershim',
      'join.yaml',
      renderJoinConfig({
        cluster: c,
        node: W1,
        controlPlaneIp: CP.ip,
        criSocket: 'unix:///var/run/dockershim.sock',
        dockershim: DOCKERSHIM,
        caCertHash: CA_HASH,
      }),
    )
    assert.match(init, /^ {2}criSocket: \/var\/run\/dockershim\.sock$/m)
    assert.doesNotMatch(init, /container-runtime/)
    assert.match(init, /network-plugin: cni/)
    assert.match(init, /cni-bin-dir: \/usr\/lib\/cni/)
    assert.match(init, /pod-infra-container-image: k8s\.gcr\.io\/pause:3\.2/)
  })
})

describe('renderInitConfig', () => {
  it('uses the kubeadm API, registry and argument shape of each version', () => {
    const expectations: Array<[string, string, string, boolean]> = [
      ['v1.20.2', 'kubeadm.k8s.io/v1beta2', 'k8s.gcr.io', false],
      ['v1.21.14', 'kubeadm.k8s.io/v1beta2', 'k8s.gcr.io', false],
      ['v1.22.0', 'kubeadm.k8s.io/v1beta3', 'k8s.gcr.io', false],
      ['v1.24.3', 'kubeadm.k8s.io/v1beta3', 'k8s.gcr.io', false],
      ['v1.30.9', 'kubeadm.k8s.io/v1beta3', 'registry.k8s.io', false],
      ['v1.31.0', 'kubeadm.k8s.io/v1beta4', 'registry.k8s.io', true],
      ['v1.34.1', 'kubeadm.k8s.io/v1beta4', 'registry.k8s.io', true],
    ]
    for (const [version, api, registry, list] of expectations) {
      const text = renderInitConfig({cluster: cluster(version), node: CP, criSocket: SOCKET})
      assert.equal(text.match(new RegExp(`^apiVersion: ${api.replace(/\./g, '\\.')}$`, 'gm'))?.length, 2, version)
      assert.match(text, new RegExp(`^imageRepository: ${registry}$`, 'm'), version)
      assert.equal(/^ {2}- name: node-ip$/m.test(text), list, `${version} kubeletExtraArgs as list`)
      assert.equal(/^ {4}node-ip: 10\.22\.0\.2$/m.test(text), !list, `${version} kubeletExtraArgs as map`)
    }
  })

  it('writes the CRI socket as a path before 1.24 and as a unix:// URL from 1.24', () => {
    assert.match(
      renderInitConfig({cluster: cluster('v1.23.0'), node: CP, criSocket: SOCKET}),
      /^ {2}criSocket: \/run\/containerd\/containerd\.sock$/m,
    )
    assert.match(
      renderInitConfig({cluster: cluster('v1.24.0'), node: CP, criSocket: SOCKET}),
      /^ {2}criSocket: unix:\/\/\/run\/containerd\/containerd\.sock$/m,
    )
    assert.equal(criSocketFor(versionTraits('v1.24.0'), '/run/crio/crio.sock'), 'unix:///run/crio/crio.sock')
  })

  it('passes --container-runtime=remote to kubelets before 1.27 only', () => {
    assert.match(renderInitConfig({cluster: cluster('v1.26.5'), node: CP, criSocket: SOCKET}), /container-runtime: remote/)
    assert.doesNotMatch(renderInitConfig({cluster: cluster('v1.27.0'), node: CP, criSocket: SOCKET}), /container-runtime/)
  })

  it('uses the given image repository and control-plane address', () => {
    const text = renderInitConfig({cluster: cluster('v1.25.0'), node: CP, criSocket: SOCKET, imageRepository: 'registry.example:5000/k8s'})
    assert.match(text, /^imageRepository: registry\.example:5000\/k8s$/m)
    assert.match(text, /^controlPlaneEndpoint: 10\.22\.0\.2:6443$/m)
  })

  it('leaves the control plane of a one-node cluster untainted', () => {
    assert.match(renderInitConfig({cluster: cluster('v1.20.2', {nodes: 1}), node: CP, criSocket: SOCKET}), /^ {2}taints: \[\]$/m)
    assert.doesNotMatch(renderInitConfig({cluster: cluster('v1.20.2', {nodes: 2}), node: CP, criSocket: SOCKET}), /taints/)
  })

  it('renders kube-proxy-mode iptables and none as the default (none skips the addon instead), nftables as its mode', () => {
    const render = (kubeProxyMode?: 'iptables' | 'nftables' | 'none') =>
      renderInitConfig({cluster: cluster('v1.31.0', {kubernetes: {kubeProxyMode}}), node: CP, criSocket: SOCKET})
    assert.equal(render('iptables'), render())
    assert.equal(render('none'), render())
    assert.match(render('nftables'), /^kind: KubeProxyConfiguration\nmode: nftables$/m)
  })

  it('rejects a node address that is not IPv4', () => {
    assert.throws(
      () => renderInitConfig({cluster: cluster('v1.20.2'), node: {...CP, ip: '10.22.0.300'}, criSocket: SOCKET}),
      /not an IPv4 address/,
    )
  })

  it(
    'is accepted by kubeadm v1.20.2 (fixture)',
    {skip: fixtureKubeadm === undefined && 'no fixture bundle (shared/fixtures/kubernetes)'},
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'ks-render-'))
      try {
        const kubeadm = fixtureKubeadm!
        const init = join(dir, 'init.yaml')
        const joinFile = join(dir, 'join.yaml')
        // The custom case too: kubeadm takes its extra args, gates and patched fields.
        for (const c of CASES.filter((c) => c.version.startsWith('v1.20.2')).map((c) => c.cluster)) {
          await writeFile(init, renderInitConfig({cluster: c, node: CP, criSocket: SOCKET}))
          await writeFile(joinFile, renderJoinConfig({cluster: c, node: W1, controlPlaneIp: CP.ip, criSocket: SOCKET, caCertHash: CA_HASH}))
          const images = execFileSync(kubeadm, ['config', 'images', 'list', '--config', init], {encoding: 'utf8'})
          assert.match(images, /^k8s\.gcr\.io\/kube-apiserver:v1\.20\.2$/m)
          for (const file of [init, joinFile]) {
            const migrated = spawnSync(kubeadm, ['config', 'migrate', '--old-config', file], {encoding: 'utf8'})
            assert.equal(migrated.status, 0, migrated.stderr)
            assert.doesNotMatch(migrated.stderr, /unknown field|error/i)
          }
        }
        const migratedJoin = execFileSync(kubeadm, ['config', 'migrate', '--old-config', joinFile], {encoding: 'utf8'})
        assert.match(migratedJoin, /caCertHashes:\n\s+- sha256:2f6a/)
        assert.doesNotMatch(migratedJoin, /unsafeSkipCAVerification: true/)
      } finally {
        await rm(dir, {recursive: true, force: true})
      }
    },
  )
})

describe('renderJoinConfig', () => {
  it('always pins the CA and never skips its verification', () => {
    const text = renderJoinConfig({cluster: cluster('v1.31.0'), node: W1, controlPlaneIp: CP.ip, criSocket: SOCKET, caCertHash: CA_HASH})
    assert.match(text, /caCertHashes:\n {4}- sha256:2f6a/)
    assert.doesNotMatch(text, /unsafeSkipCAVerification/)
  })

  it('normalizes the CA hash and rejects a malformed one', () => {
    assert.equal(normalizeCaCertHash(CA_HASH.slice(7).toUpperCase()), CA_HASH)
    assert.throws(
      () => renderJoinConfig({cluster: cluster('v1.20.2'), node: W1, controlPlaneIp: CP.ip, criSocket: SOCKET, caCertHash: 'sha256:abc'}),
      /not a CA certificate hash/,
    )
  })

  it('refuses to join a control-plane node', () => {
    assert.throws(() =>
      renderJoinConfig({cluster: cluster('v1.20.2'), node: CP, controlPlaneIp: CP.ip, criSocket: SOCKET, caCertHash: CA_HASH}),
    )
  })

  it("lets preflight accept a worker's kubelet.conf issued before the join, and only then", () => {
    const input = {cluster: cluster('v1.20.2'), node: W1, controlPlaneIp: CP.ip, criSocket: SOCKET, caCertHash: CA_HASH}
    const issued = parse(renderJoinConfig({...input, kubeletConfIssued: true}).split('---\n')[0])
    assert.deepEqual(issued.nodeRegistration.ignorePreflightErrors, ['FileAvailable--etc-kubernetes-kubelet.conf'])
    assert.equal(parse(renderJoinConfig(input).split('---\n')[0]).nodeRegistration.ignorePreflightErrors, undefined)
  })
})

describe("a worker's kubelet credentials issued before its join", () => {
  it('renders a kubelet.conf that reads the rotatable certificate pair, as TLS bootstrap leaves it', () => {
    const config = parse(renderKubeletKubeconfig(cluster('v1.20.2'), 'CA PEM\n', CP.ip))
    assert.equal(config['current-context'], 'kubelet')
    assert.equal(config.clusters[0].cluster.server, `https://${CP.ip}:6443`)
    assert.equal(Buffer.from(config.clusters[0].cluster['certificate-authority-data'], 'base64').toString(), 'CA PEM\n')
    assert.deepEqual(config.users[0].user, {'client-certificate': KUBELET_CLIENT_PEM, 'client-key': KUBELET_CLIENT_PEM})
    assert.equal(KUBELET_CLIENT_PEM, '/var/lib/kubelet/pki/kubelet-client-current.pem')
    assert.throws(() => renderKubeletKubeconfig(cluster('v1.20.2'), 'CA', 'cp'), /not an IPv4 address/)
  })

  it("reuses the control plane's init configuration under the worker's name, every other field unchanged", () => {
    const init = renderInitConfig({cluster: cluster('v1.20.2'), node: CP, criSocket: SOCKET})
    const forWorker = initConfigForNode(init, W1.name)
    const documents = (text: string) => text.split('---\n').map((d) => parse(d))
    const [before, after] = [documents(init), documents(forWorker)]
    assert.equal(after[0].nodeRegistration.name, W1.name)
    after[0].nodeRegistration.name = CP.name
    assert.deepEqual(after, before)
    assert.throws(() => initConfigForNode('kind: JoinConfiguration\n', W1.name), /no InitConfiguration/)
  })
})

describe('kubelet units', () => {
  it('runs /usr/local/bin/kubelet and restarts it quickly', () => {
    const unit = kubeletUnit()
    assert.match(unit, /^ExecStart=\/usr\/local\/bin\/kubelet$/m)
    assert.match(unit, /^Restart=always$/m)
    assert.match(unit, /^RestartSec=2$/m)
  })

  it('has the upstream kubeadm drop-in with the kubelet path changed', async () => {
    const dropIn = kubeadmDropIn(versionTraits('v1.20.2'))
    assert.match(dropIn, /^ExecStart=$/m)
    assert.match(
      dropIn,
      /^ExecStart=\/usr\/local\/bin\/kubelet \$KUBELET_KUBECONFIG_ARGS \$KUBELET_CONFIG_ARGS \$KUBELET_KUBEADM_ARGS \$KUBELET_EXTRA_ARGS$/m,
    )
    assert.match(dropIn, /^EnvironmentFile=-\/var\/lib\/kubelet\/kubeadm-flags\.env$/m)
    const recipe = '/root/proto/node-files/etc/systemd/system/kubelet.service.d/10-kubeadm.conf'
    if (existsSync(recipe)) assert.equal(dropIn, await readFile(recipe, 'utf8'))
  })

  it('orders the kubelet after the runtime and the node units, with a short stop timeout', () => {
    const dropIn = kubeSpawnDropIn('containerd.service')
    assert.match(dropIn, /^After=containerd\.service kube-spawn-cgroups\.service kube-spawn-network\.service$/m)
    assert.match(dropIn, /^Wants=containerd\.service/m)
    assert.match(dropIn, /^TimeoutStopSec=10s$/m)
    assert.deepEqual(
      kubeletSystemdFiles('crio.service').map((f: {path: string}) => f.path),
      [
        '/etc/systemd/system/kubelet.service',
        '/etc/systemd/system/kubelet.service.d/10-kubeadm.conf',
        '/etc/systemd/system/kubelet.service.d/20-kube-spawn.conf',
      ],
    )
  })

  it("answers cAdvisor's Docker probe at once: /info and /version on one kept-open connection", async (t) => {
    const files = kubeletSystemdFiles('containerd.service', undefined, true)
    const socket = files.find((f: NodeFile) => f.path.endsWith('kube-spawn-cadvisor-docker.socket'))!
    assert.match(socket.content, /^ListenStream=\/run\/kube-spawn\/cadvisor-docker\.sock$/m)
    assert.match(socket.content, /^Accept=yes$/m)
    assert.ok(files.some((f: NodeFile) => f.link === '../kube-spawn-cadvisor-docker.socket'))
    const script = files.find((f: NodeFile) => f.path.endsWith('cadvisor-docker-answer.sh'))!
    assert.equal(script.mode, 0o755)
    const dir = await mkdtemp(join(tmpdir(), 'ks-answer-'))
    t.after(() => rm(dir, {recursive: true, force: true}))
    await writeFile(join(dir, 'answer.sh'), script.content)
    const requests = ['GET /v1.40/info HTTP/1.1', 'GET /v1.40/version HTTP/1.1', 'HEAD /_ping HTTP/1.1']
    const input = requests.map((line) => `${line}\r\nHost: docker\r\nUser-Agent: Go-http-client/1.1\r\n\r\n`).join('')
    const out = execFileSync('sh', [join(dir, 'answer.sh')], {input, encoding: 'utf8'})
    const responses = out.split('HTTP/1.1 200 OK\r\n').slice(1)
    assert.equal(responses.length, 3)
    const bodyOf = (response: string) => {
      const [head, body] = response.split('\r\n\r\n')
      assert.equal(Number(/Content-Length: (\d+)/.exec(head)![1]), body.length)
      return body
    }
    assert.equal(JSON.parse(bodyOf(responses[0])).DockerRootDir, '/var/lib/docker')
    assert.equal(JSON.parse(bodyOf(responses[1])).Version, '0.0.0')
    assert.equal(bodyOf(responses[2]), '')
    assert.deepEqual(
      kubeletSystemdFiles('containerd.service')
        .map((f: NodeFile) => f.path)
        .filter((p: string) => p.includes('cadvisor')),
      [],
    )
  })
})

describe('renderCniConflist', () => {
  it('is a bridge + host-local + portmap chain on the node range', () => {
    const conf = JSON.parse(renderCniConflist('10.244.1.0/24'))
    assert.equal(conf.cniVersion, '0.4.0')
    const [bridge, portmap] = conf.plugins
    assert.deepEqual(
      {type: bridge.type, bridge: bridge.bridge, isGateway: bridge.isGateway, ipMasq: bridge.ipMasq, hairpinMode: bridge.hairpinMode},
      {type: 'bridge', bridge: 'cni0', isGateway: true, ipMasq: false, hairpinMode: true},
    )
    assert.equal(bridge.ipam.type, 'host-local')
    assert.deepEqual(bridge.ipam.ranges, [[{subnet: '10.244.1.0/24'}]])
    assert.deepEqual(portmap, {type: 'portmap', capabilities: {portMappings: true}})
  })

  it('rejects a malformed range', () => {
    assert.throws(() => renderCniConflist('10.244.1.1/24'))
  })
})

describe('renderYaml (the yaml package, YAML 1.1-safe)', () => {
  it('quotes every string that YAML 1.1 or 1.2 would read as something else, and each reads back the same', () => {
    for (const text of [
      'true',
      'False',
      'yes',
      'NO',
      'on',
      'off',
      'y',
      'n',
      'null',
      '~',
      '',
      '24',
      '-1',
      '0.5',
      '1e3',
      '0x1f',
      '0o17',
      '.inf',
      '.NaN',
      '1:20',
      '2024-01-02',
      'a: b',
      '#x',
      'x #y',
      '- x',
      '*x',
      '&x',
      '!x',
      '|',
      '>',
      "'x'",
      '"x"',
      '{a}',
      '[a]',
      '@x',
      '`x',
      ' x',
      'x ',
      '%x',
    ]) {
      const line = renderYaml([{k: text}])
      assert.match(line, /^k: ".*"\n$/, JSON.stringify(text))
      for (const version of ['1.1', '1.2'] as const)
        assert.deepEqual(parse(line, {version}), {k: text}, `${JSON.stringify(text)} in YAML ${version}`)
    }
    for (const text of ['kube-spawn', '10.22.0.2', '10.244.0.0/16', 'v1.20.2', '24h0m0s', '/etc/resolv.conf', 'kube-spawn cluster dev']) {
      assert.equal(renderYaml([{k: text}]), `k: ${text}\n`)
    }
  })

  it('keeps a line break, and refuses the YAML 1.1-only breaks that no kube-spawn value holds', () => {
    assert.deepEqual(parse(renderYaml([{k: 'a\nb'}]), {version: '1.1'}), {k: 'a\nb'})
    for (const text of ['a\u2028b', 'a\u2029b', 'a\u0085b']) assert.throws(() => renderYaml([{k: text}]), /YAML 1\.1 line break/)
  })

  it("writes nested maps, sequences and empty collections in block style, sequences at their key's indent", () => {
    const text = renderYaml([
      {a: 1, b: true, c: null, skipped: undefined, d: {e: 'f', g: {}}, h: [], i: ['x', {j: 'k', l: ['m']}, ['p', 'q']]},
    ])
    assert.equal(text, 'a: 1\nb: true\nc: null\nd:\n  e: f\n  g: {}\nh: []\ni:\n- x\n- j: k\n  l:\n  - m\n- - p\n  - q\n')
  })

  it('joins documents with ---', () => {
    assert.equal(renderYaml([{a: 1}, {b: 2}]), 'a: 1\n---\nb: 2\n')
  })
})
