import assert from 'node:assert/strict'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {
  MAX_CLUSTER_NAME,
  generateToken,
  parseDuration,
  parseToml,
  redactToken,
  resolveDefinition,
  serializeCluster,
  validateClusterName,
} from '../../../dist/config/definition.js'
import type {Cluster, DefinitionOverrides} from '../../../dist/config/definition.js'
import {definitionSpec} from '../../../dist/config/spec.js'
import type {Spec} from '../../../dist/config/spec.js'
import {UserError} from '../../../dist/errors.js'

const SOURCE = 'kspawn.toml'

async function rejects(raw: Record<string, unknown>, fragment: string | RegExp, overrides: DefinitionOverrides = {}): Promise<UserError> {
  let caught: unknown
  try {
    await resolveDefinition(raw, SOURCE, overrides)
  } catch (error) {
    caught = error
  }
  assert.ok(caught instanceof UserError, `expected a UserError for ${JSON.stringify(raw)}, got ${String(caught)}`)
  if (typeof fragment === 'string') assert.ok(caught.message.includes(fragment), `"${caught.message}" should contain "${fragment}"`)
  else assert.match(caught.message, fragment)
  assert.ok(caught.hint, 'every error carries a hint')
  assert.doesNotMatch(caught.line, /\n/, 'the error is one line')
  return caught
}

/** The spec default of a key path such as "network.pod-cidr". */
function specDefault(path: string): unknown {
  let spec: Spec = definitionSpec
  for (const key of path.split('.')) {
    assert.equal(spec.kind, 'table')
    spec = (spec as Spec & {kind: 'table'}).fields[key]
  }
  return (spec as {default?: unknown}).default
}

describe('resolveDefinition: defaults', () => {
  it('fills in every default from an empty file', async () => {
    const c = await resolveDefinition({}, SOURCE)
    assert.equal(c.clusterName, 'default')
    assert.equal(c.containerRuntime, 'containerd')
    assert.equal(c.image, 'debian')
    assert.equal(c.kubernetesVersion, 'v1.20.2')
    assert.equal(c.nodes, 3)
    assert.equal(c.cni, 'bridge')
    assert.deepEqual(c.kubernetes, {
      source: 'https://dl.k8s.io',
      featureGates: {},
      apiServerExtraArgs: {},
      controllerManagerExtraArgs: {},
      schedulerExtraArgs: {},
      kubeletExtraArgs: {},
      configPatches: [],
      kubeProxyMode: 'iptables',
    })
    assert.deepEqual(c.network, {
      subnet: '10.22.0.0/16',
      clusterSubnet: undefined,
      podCidr: '10.244.0.0/16',
      serviceCidr: '10.96.0.0/12',
      egress: true,
    })
    assert.deepEqual(c.bindmount, {readOnly: [], readWrite: []})
    assert.deepEqual(c.runtimeConfig, {cgroupPerQos: true, failSwapOn: false, timeout: '10m', useLegacyCgroupDriver: true})
    assert.deepEqual(c.pluginConfig, {})
    assert.deepEqual(c.machines, [])
    assert.deepEqual(c.state, {initialized: false})
  })

  it('uses the same defaults the spec (and so the schema) documents', async () => {
    const c = await resolveDefinition({}, SOURCE)
    const pairs: Array<[string, unknown]> = [
      ['cluster-name', c.clusterName],
      ['container-runtime', c.containerRuntime],
      ['image', c.image],
      ['kubernetes-version', c.kubernetesVersion],
      ['nodes', c.nodes],
      ['cni', c.cni],
      ['kubernetes.source', c.kubernetes.source],
      ['kubernetes.kube-proxy-mode', c.kubernetes.kubeProxyMode],
      ['network.subnet', c.network.subnet],
      ['network.pod-cidr', c.network.podCidr],
      ['network.service-cidr', c.network.serviceCidr],
      ['network.egress', c.network.egress],
      ['runtime-config.cgroup-per-qos', c.runtimeConfig.cgroupPerQos],
      ['runtime-config.fail-swap-on', c.runtimeConfig.failSwapOn],
      ['runtime-config.timeout', c.runtimeConfig.timeout],
      ['runtime-config.use-legacy-cgroup-driver', c.runtimeConfig.useLegacyCgroupDriver],
    ]
    for (const [path, value] of pairs) assert.equal(value, specDefault(path), path)
  })

  it('generates a valid token when none is given', async () => {
    const c = await resolveDefinition({}, SOURCE)
    assert.match(c.token, /^[a-z0-9]{6}\.[a-z0-9]{16}$/)
  })

  it('keeps what the file says', async () => {
    const c = await resolveDefinition(
      {
        'cluster-name': 'dev',
        nodes: 2,
        token: 'abcdef.0123456789abcdef',
        cni: 'none',
        network: {egress: false, 'pod-cidr': '10.200.0.0/16'},
        'runtime-config': {timeout: '90s', 'use-legacy-cgroup-driver': false},
        'plugin-config': {'image-debian': {release: 'trixie', 'extra-packages': ['vim']}},
      },
      SOURCE,
    )
    assert.equal(c.clusterName, 'dev')
    assert.equal(c.nodes, 2)
    assert.equal(c.token, 'abcdef.0123456789abcdef')
    assert.equal(c.cni, 'none')
    assert.equal(c.network.egress, false)
    assert.equal(c.network.podCidr, '10.200.0.0/16')
    assert.equal(c.runtimeConfig.timeout, '90s')
    assert.equal(c.runtimeConfig.useLegacyCgroupDriver, false)
    assert.deepEqual(c.pluginConfig, {'image-debian': {release: 'trixie', 'extra-packages': ['vim']}})
  })

  it('lets flag overrides win over the file', async () => {
    const c = await resolveDefinition(
      {'cluster-name': 'file', nodes: 5, 'kubernetes-version': 'v1.20.2', 'container-runtime': 'containerd', image: 'debian'},
      SOURCE,
      {clusterName: 'flag', nodes: 1, kubernetesVersion: 'v1.25.0', containerRuntime: 'other', image: 'alpine'},
    )
    assert.equal(c.clusterName, 'flag')
    assert.equal(c.nodes, 1)
    assert.equal(c.kubernetesVersion, 'v1.25.0')
    assert.equal(c.containerRuntime, 'other')
    assert.equal(c.image, 'alpine')
  })

  it('writes the Kubernetes version in its canonical spelling', async () => {
    assert.equal((await resolveDefinition({'kubernetes-version': '1.20.2'}, SOURCE)).kubernetesVersion, 'v1.20.2')
  })
})

describe('resolveDefinition: the spec check', () => {
  it('rejects an unknown key and lists the known ones', async () => {
    const e = await rejects({nodez: 3}, 'kspawn.toml: unknown key "nodez"; known keys: cluster-name, container-runtime')
    assert.match(e.hint!, /docs\/configuration\.md/)
  })

  it('rejects an unknown key in a table, naming the table', async () => {
    await rejects({network: {subnett: '10.0.0.0/16'}}, 'unknown key "network.subnett"; known keys in [network]: subnet, cluster-subnet')
  })

  it('rejects values of the wrong type', async () => {
    await rejects({nodes: '3'}, 'nodes must be a whole number (got string "3")')
    await rejects({nodes: 2.5}, 'nodes must be a whole number (got number 2.5)')
    await rejects({network: {egress: 'yes'}}, 'network.egress must be true or false (got string "yes")')
    await rejects({image: 7}, 'image must be a string (got number 7)')
    await rejects({network: '10.0.0.0/8'}, 'network must be a table')
    await rejects({machines: {name: 'x'}}, 'machines must be an array of tables (got a table)')
    await rejects({'cluster-name': new Date(0)}, 'cluster-name must be a string (got a date)')
  })

  it('rejects numbers out of range', async () => {
    await rejects({nodes: 0}, 'nodes = 0 is out of range; use a whole number from 1 to 50')
    await rejects({nodes: 51}, 'nodes = 51 is out of range')
  })

  it('checks the range of a --nodes override too', async () => {
    await rejects({}, 'kspawn.toml: nodes = 0 is out of range', {nodes: 0})
    await rejects({}, 'nodes = 51 is out of range', {nodes: 51})
  })

  it('rejects a value outside an enum', async () => {
    await rejects({cni: 'calico'}, 'cni = "calico" is not one of "bridge", "none"')
  })

  it('rejects a bind mount or machine without its required keys', async () => {
    await rejects({bindmount: {'read-only': [{src: '/tmp'}]}}, 'bindmount.read-only[0] needs the key "dst"')
    await rejects({machines: [{role: 'worker'}]}, 'machines[0] needs the key "name"')
  })

  it('accepts anything under [plugin-config.<name>]', async () => {
    const c = await resolveDefinition({'plugin-config': {x: {deep: {any: [1, 'two']}}}}, SOURCE)
    assert.deepEqual(c.pluginConfig, {x: {deep: {any: [1, 'two']}}})
  })
})

describe('resolveDefinition: rules beyond types', () => {
  it('rejects cluster names that are not DNS-1123 labels', async () => {
    for (const name of ['../etc', 'UPPER', 'a_b', '-a', 'a-', '', 'a'.repeat(MAX_CLUSTER_NAME + 1), 'a.b']) {
      await rejects({'cluster-name': name}, `cluster name "${name}" is not a lower-case DNS-1123 label of at most 40 characters`)
      await rejects({}, `cluster name "${name}"`, {clusterName: name})
    }
  })

  it('accepts good cluster names', async () => {
    for (const name of ['a', 'dev', 'dev-1', '1a', 'a'.repeat(MAX_CLUSTER_NAME)]) {
      assert.equal((await resolveDefinition({'cluster-name': name}, SOURCE)).clusterName, name)
    }
  })

  it('rejects a bad token without printing its secret half', async () => {
    const e = await rejects({token: 'abcdef.0123456789ABCDEF'}, 'token "abcdef.<redacted>" is not a kubeadm bootstrap token')
    assert.doesNotMatch(e.line, /0123456789/)
    await rejects({token: 'abc.def'}, 'token "abc.<redacted>"')
    await rejects({token: 'secretwithoutdot'}, 'token "<redacted>"')
  })

  it('rejects Kubernetes versions that are malformed or too old', async () => {
    for (const version of ['1.19.0', 'v1.19.16', 'latest', 'v1.20', 'v2.0.0', 'stable-1.20']) {
      const e = await rejects({'kubernetes-version': version}, `kubernetes-version "${version}" is not supported`)
      assert.match(e.hint!, /v1\.20\.0 or newer/)
    }
    await rejects({}, 'kubernetes-version "latest" is not supported', {kubernetesVersion: 'latest'})
  })

  it('rejects a timeout that is not a duration', async () => {
    await rejects({'runtime-config': {timeout: '10 minutes'}}, 'runtime-config.timeout "10 minutes" is not a duration')
    await rejects({'runtime-config': {timeout: '0s'}}, 'runtime-config.timeout "0s" is not a duration')
  })

  it('rejects a kubernetes.source that is neither a URL nor an absolute path', async () => {
    await rejects({kubernetes: {source: 'bundle'}}, 'kubernetes.source "bundle" is neither an http(s) URL nor an absolute directory path')
    await rejects({kubernetes: {source: 'ftp://mirror'}}, 'kubernetes.source "ftp://mirror"')
    for (const source of ['/opt/k8s-bundle', 'http://mirror.local/k8s', 'https://dl.k8s.io']) {
      assert.equal((await resolveDefinition({kubernetes: {source}}, SOURCE)).kubernetes.source, source)
    }
  })

  it('rejects malformed CIDR blocks', async () => {
    await rejects({network: {subnet: '10.22.0.1/16'}}, 'network.subnet "10.22.0.1/16" is not an IPv4 CIDR block')
    await rejects({network: {'pod-cidr': '10.244.0.0'}}, 'network.pod-cidr "10.244.0.0" is not an IPv4 CIDR block')
    await rejects({network: {'service-cidr': 'fd00::/64'}}, 'network.service-cidr "fd00::/64" is not an IPv4 CIDR block')
  })

  it('rejects overlapping networks', async () => {
    await rejects({network: {'pod-cidr': '10.22.128.0/17'}}, 'network.subnet 10.22.0.0/16 overlaps network.pod-cidr 10.22.128.0/17')
    await rejects(
      {network: {'service-cidr': '10.240.0.0/12'}},
      'network.pod-cidr 10.244.0.0/16 overlaps network.service-cidr 10.240.0.0/12',
    )
    await rejects({network: {subnet: '10.96.0.0/16'}}, 'network.subnet 10.96.0.0/16 overlaps network.service-cidr 10.96.0.0/12')
  })

  it('rejects a network.subnet smaller than a /24', async () => {
    await rejects({network: {subnet: '10.22.0.0/25'}}, 'network.subnet 10.22.0.0/25 is smaller than a /24')
  })

  it('checks network.cluster-subnet is a /24 inside network.subnet', async () => {
    for (const block of ['10.23.0.0/24', '10.22.0.0/23', '10.22.0.0/25', 'nope']) {
      await rejects(
        {network: {'cluster-subnet': block}},
        `network.cluster-subnet "${block}" is not a /24 inside network.subnet 10.22.0.0/16`,
      )
    }
    assert.equal((await resolveDefinition({network: {'cluster-subnet': '10.22.7.0/24'}}, SOURCE)).network.clusterSubnet, '10.22.7.0/24')
  })

  describe('[kubernetes] kubeadm settings', () => {
    it('keeps feature gates, extra args, patches, config patches and the kube-proxy mode', async () => {
      const c = await resolveDefinition(
        {
          'kubernetes-version': 'v1.31.0',
          kubernetes: {
            'feature-gates': {SomeFeature: true, OtherFeature2: false},
            'api-server-extra-args': {v: '2', 'audit-log-maxage': '7'},
            'kubelet-extra-args': {'max-pods': '50'},
            patches: tmpdir(),
            'config-patches': ['kind: KubeletConfiguration\nmaxPods: 50\n'],
            'kube-proxy-mode': 'nftables',
          },
        },
        SOURCE,
      )
      assert.deepEqual(c.kubernetes.featureGates, {SomeFeature: true, OtherFeature2: false})
      assert.deepEqual(c.kubernetes.apiServerExtraArgs, {v: '2', 'audit-log-maxage': '7'})
      assert.deepEqual(c.kubernetes.kubeletExtraArgs, {'max-pods': '50'})
      assert.equal(c.kubernetes.patches, tmpdir())
      assert.deepEqual(c.kubernetes.configPatches, ['kind: KubeletConfiguration\nmaxPods: 50\n'])
      assert.equal(c.kubernetes.kubeProxyMode, 'nftables')
    })

    it('rejects feature gates and flag names of the wrong form, and values of the wrong type', async () => {
      for (const gate of ['foo-bar', 'lowerCase', 'Some_Gate', '1Gate'])
        await rejects({kubernetes: {'feature-gates': {[gate]: true}}}, `kubernetes.feature-gates has the entry "${gate}"`)
      await rejects({kubernetes: {'feature-gates': {SomeFeature: 'true'}}}, 'kubernetes.feature-gates.SomeFeature must be true or false')
      for (const flag of ['--v', '-v', 'V', 'a_b', ''])
        await rejects({kubernetes: {'scheduler-extra-args': {[flag]: '1'}}}, `kubernetes.scheduler-extra-args has the entry "${flag}"`)
      await rejects({kubernetes: {'kubelet-extra-args': {'max-pods': 50}}}, 'kubernetes.kubelet-extra-args.max-pods must be a string')
    })

    it('refuses the flags kube-spawn sets itself', async () => {
      await rejects(
        {kubernetes: {'kubelet-extra-args': {'node-ip': '10.0.0.1'}}},
        'kubernetes.kubelet-extra-args.node-ip is set by kube-spawn',
      )
      await rejects(
        {kubernetes: {'controller-manager-extra-args': {'allocate-node-cidrs': 'false'}}},
        'kubernetes.controller-manager-extra-args.allocate-node-cidrs is set by kube-spawn',
      )
      const e = await rejects({kubernetes: {'api-server-extra-args': {'feature-gates': 'A=true'}}}, 'feature-gates is not allowed')
      assert.match(e.hint!, /\[kubernetes\.feature-gates\]/)
    })

    it('offers kube-proxy-mode nftables from Kubernetes 1.31', async () => {
      await rejects(
        {'kubernetes-version': 'v1.30.9', kubernetes: {'kube-proxy-mode': 'nftables'}},
        'kubernetes.kube-proxy-mode = "nftables" needs Kubernetes 1.31 or newer, not v1.30.9',
      )
      await rejects(
        {kubernetes: {'kube-proxy-mode': 'ipvs'}},
        'kubernetes.kube-proxy-mode = "ipvs" is not one of "iptables", "nftables", "none"',
      )
      const none = await resolveDefinition({kubernetes: {'kube-proxy-mode': 'none'}}, SOURCE)
      assert.equal(none.kubernetes.kubeProxyMode, 'none')
    })

    it('wants patches to be an existing absolute directory (existence only at create)', async () => {
      await rejects({kubernetes: {patches: 'patches'}}, 'kubernetes.patches "patches" is not an absolute path')
      await rejects(
        {kubernetes: {patches: '/nonexistent-ks/patches'}},
        'kubernetes.patches /nonexistent-ks/patches does not exist or is not a directory',
      )
      const loaded = await resolveDefinition({kubernetes: {patches: '/nonexistent-ks/patches'}}, SOURCE, {}, {checkPaths: false})
      assert.equal(loaded.kubernetes.patches, '/nonexistent-ks/patches')
    })

    it('wants each config patch to parse and to select a document of the version', async () => {
      const patch = (text: string, version = 'v1.20.2') => ({'kubernetes-version': version, kubernetes: {'config-patches': [text]}})
      await rejects(patch('kind: [x'), 'kubernetes.config-patches[0] does not parse as YAML')
      await rejects(patch('- a'), 'kubernetes.config-patches[0] is not a YAML map')
      await rejects(patch('maxPods: 5'), 'kubernetes.config-patches[0] has no kind')
      await rejects(
        patch('kind: Nothing'),
        'kubernetes.config-patches[0] patches Nothing, which matches no kubeadm config document for v1.20.2',
      )
      await rejects(
        patch('apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration'),
        'patches ClusterConfiguration (kubeadm.k8s.io/v1beta4), which matches no kubeadm config document for v1.20.2',
      )
      for (const ok of [
        'kind: ClusterConfiguration',
        'apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration',
        'kind: KubeProxyConfiguration',
      ])
        await resolveDefinition(patch(ok, 'v1.31.0'), SOURCE)
    })
  })

  describe('bind mounts', () => {
    let dir: string
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'ks-def-'))
    })
    after(async () => {
      await rm(dir, {recursive: true, force: true})
    })

    it('accepts an existing absolute src', async () => {
      const c = await resolveDefinition(
        {bindmount: {'read-only': [{src: dir, dst: '/data'}], 'read-write': [{src: dir, dst: '/rw'}]}},
        SOURCE,
      )
      assert.deepEqual(c.bindmount, {readOnly: [{src: dir, dst: '/data'}], readWrite: [{src: dir, dst: '/rw'}]})
    })

    it('rejects a src that does not exist', async () => {
      const missing = join(dir, 'missing')
      await rejects({bindmount: {'read-write': [{src: missing, dst: '/data'}]}}, `bindmount src ${missing} does not exist`)
    })

    it('rejects relative paths', async () => {
      await rejects(
        {bindmount: {'read-only': [{src: 'data', dst: '/data'}]}},
        'bindmount data -> /data: src and dst must be absolute paths',
      )
      await rejects({bindmount: {'read-only': [{src: dir, dst: 'data'}]}}, 'src and dst must be absolute paths')
    })

    it('names the machine of a per-node mount', async () => {
      const machines = [
        {name: 'ks-default-w1', role: 'worker', ip: '10.22.0.3', bindmount: {'read-only': [{src: '/nonexistent-ks', dst: '/x'}]}},
      ]
      await rejects({machines}, 'machines "ks-default-w1" bindmount src /nonexistent-ks does not exist')
    })

    it('skips the existence check with checkPaths: false (loading recorded state)', async () => {
      const c = await resolveDefinition({bindmount: {'read-only': [{src: '/nonexistent-ks', dst: '/x'}]}}, SOURCE, {}, {checkPaths: false})
      assert.equal(c.bindmount.readOnly[0].src, '/nonexistent-ks')
    })
  })
})

describe('validateClusterName', () => {
  it('prefixes the source only when one is given', () => {
    assert.throws(
      () => validateClusterName('UPPER'),
      (e: unknown) => e instanceof UserError && e.message.startsWith('cluster name "UPPER"'),
    )
    assert.throws(
      () => validateClusterName('UPPER', 'flags'),
      (e: unknown) => e instanceof UserError && e.message.startsWith('flags: cluster name'),
    )
    validateClusterName('ok')
  })
})

describe('tokens', () => {
  it('generates kubeadm bootstrap tokens, different each time', () => {
    const tokens = new Set(Array.from({length: 500}, generateToken))
    assert.equal(tokens.size, 500)
    for (const token of tokens) assert.match(token, /^[a-z0-9]{6}\.[a-z0-9]{16}$/)
  })

  it('redacts the secret half only', () => {
    assert.equal(redactToken('abcdef.0123456789abcdef'), 'abcdef.<redacted>')
    assert.equal(redactToken('nodot'), '<redacted>')
  })
})

describe('parseDuration', () => {
  const cases: Array<[string, number | undefined]> = [
    ['90s', 90_000],
    ['10m', 600_000],
    ['1h', 3_600_000],
    ['1m30s', 90_000],
    ['2h5m1s', 7_501_000],
    ['0s', undefined],
    ['', undefined],
    ['10', undefined],
    ['1.5m', undefined],
    ['10 m', undefined],
    ['30s1m', undefined],
    ['-5s', undefined],
  ]
  for (const [text, ms] of cases) {
    it(`"${text}" → ${ms}`, () => assert.equal(parseDuration(text), ms))
  }
})

describe('parseToml', () => {
  it('parses TOML', () => {
    assert.deepEqual(parseToml('nodes = 2\n[network]\negress = false\n', SOURCE), {nodes: 2, network: {egress: false}})
  })

  it('reports a syntax error as one line with file, line and column', () => {
    assert.throws(
      () => parseToml('nodes = 2\ncni = "bridge\n', 'my.toml'),
      (e: unknown) => e instanceof UserError && /^my\.toml:2:\d+: malformed TOML: \S/.test(e.message) && !e.line.includes('\n'),
    )
    assert.throws(
      () => parseToml('nodes = 2\nnodes = 3\n', 'my.toml'),
      (e: unknown) => e instanceof UserError && /^my\.toml:2:\d+:/.test(e.message),
    )
  })
})

describe('serializeCluster', () => {
  it('round-trips through parseToml and resolveDefinition', async () => {
    const raw = {
      'cluster-name': 'round',
      nodes: 2,
      token: 'abcdef.0123456789abcdef',
      cni: 'none',
      kubernetes: {
        source: '/opt/bundle',
        'feature-gates': {SomeFeature: true, OtherFeature: false},
        'api-server-extra-args': {v: '2'},
        'controller-manager-extra-args': {'terminated-pod-gc-threshold': '100'},
        'scheduler-extra-args': {v: '3'},
        'kubelet-extra-args': {'node-labels': 'tier=dev'},
        patches: '/tmp',
        'config-patches': [
          'kind: ClusterConfiguration\nnetworking:\n  dnsDomain: "dev.local"\n',
          'kind: KubeletConfiguration\nmaxPods: 50',
        ],
        'kube-proxy-mode': 'none',
      },
      network: {'cluster-subnet': '10.22.3.0/24', egress: false},
      bindmount: {'read-only': [{src: '/tmp', dst: '/host-tmp'}]},
      'runtime-config': {timeout: '1m30s', 'fail-swap-on': true},
      'plugin-config': {'image-debian': {release: 'bookworm', 'extra-packages': ['vim', 'less']}},
      machines: [
        {name: 'ks-round-cp', role: 'control-plane', ip: '10.22.3.2', running: true},
        {name: 'ks-round-w1', role: 'worker', ip: '10.22.3.3', bindmount: {'read-write': [{src: '/tmp', dst: '/scratch'}]}},
      ],
      state: {initialized: true},
    }
    const cluster: Cluster = await resolveDefinition(raw, SOURCE)
    const text = serializeCluster(cluster)
    assert.match(text, /^# Written by kube-spawn/)
    const again = await resolveDefinition(parseToml(text, SOURCE), SOURCE)
    assert.deepEqual(again, cluster)
    assert.equal(serializeCluster(again), text)
  })

  it('writes only keys the spec knows', async () => {
    const text = serializeCluster(await resolveDefinition({}, SOURCE))
    const {checkAgainstSpec} = await import('../../../dist/config/spec.js')
    assert.deepEqual(checkAgainstSpec(parseToml(text, SOURCE), definitionSpec, ''), [])
  })
})
