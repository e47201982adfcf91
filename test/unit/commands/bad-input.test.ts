/**
 * Every bad input fails before anything is touched: a non-zero exit, one line on stderr that says
 * what is wrong, and a state root (holding the cluster "keep") that stays byte for byte the same.
 */
import assert from 'node:assert/strict'
import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {kubeSpawn, makeWorkDir, snapshotTree, stderrLines} from '../helpers/cli.ts'

interface Case {
  name: string
  /** Written to <work>/kspawn.toml and passed with --config. */
  toml?: string
  /** Arguments after --dir; a command name first. */
  args?: string[]
  expect: string | RegExp
  exitCode?: number
}

const cases: Case[] = [
  {name: 'malformed TOML names the line and column', toml: 'nodes = 2\ncni = "bridge\n', expect: /kspawn\.toml:2:\d+: malformed TOML: /},
  {name: 'an unknown key', toml: 'nodez = 3\n', expect: 'kspawn.toml: unknown key "nodez"; known keys: cluster-name'},
  {
    name: 'an unknown key in a table',
    toml: '[network]\nsubnett = "10.0.0.0/16"\n',
    expect: 'unknown key "network.subnett"; known keys in [network]',
  },
  {name: 'a value of the wrong type', toml: 'nodes = "3"\n', expect: 'kspawn.toml: nodes must be a whole number (got string "3")'},
  {name: 'nodes = 0', toml: 'nodes = 0\n', expect: 'kspawn.toml: nodes = 0 is out of range; use a whole number from 1 to 50'},
  {name: '--nodes 0', args: ['create', '--nodes', '0'], expect: 'nodes = 0 is out of range; use a whole number from 1 to 50'},
  {
    name: '--nodes abc, in one line without the usage',
    args: ['create', '--nodes', 'abc'],
    expect: 'Parsing --nodes: Expected an integer but received: abc; see kube-spawn create --help',
  },
  {name: 'an unknown flag', args: ['stop', '--bogus'], expect: 'Nonexistent flag: --bogus; see kube-spawn stop --help'},
  {
    name: 'a flag without its value',
    args: ['create', '--nodes'],
    expect: /^kube-spawn: Flag --nodes expects a value; see kube-spawn create --help$/,
  },
  {name: 'a cni outside the enum', toml: 'cni = "calico"\n', expect: 'cni = "calico" is not one of "bridge", "none"'},
  {
    name: 'an unknown runtime lists the installed ones',
    toml: 'container-runtime = "rkt"\n',
    expect: 'unknown container runtime "rkt": installed: containerd, cri-o, docker',
  },
  {name: 'an unknown runtime by flag', args: ['create', '--container-runtime', 'rkt'], expect: 'installed: containerd, cri-o, docker'},
  {name: 'an unknown image lists the installed ones', toml: 'image = "fedora"\n', expect: 'unknown image "fedora": installed: debian'},
  {name: 'cluster name ../etc', toml: 'cluster-name = "../etc"\n', expect: 'cluster name "../etc" is not a lower-case DNS-1123 label'},
  {name: 'cluster name UPPER', toml: 'cluster-name = "UPPER"\n', expect: 'cluster name "UPPER" is not a lower-case DNS-1123 label'},
  {name: 'cluster name ../etc by flag', args: ['create', '-c', '../etc'], expect: 'cluster name "../etc"'},
  {name: 'cluster name UPPER by flag', args: ['create', '-c', 'UPPER'], expect: 'cluster name "UPPER"'},
  {
    name: 'a bad token, redacted',
    toml: 'token = "abcdef.0123456789ABCDEF"\n',
    expect: 'token "abcdef.<redacted>" is not a kubeadm bootstrap token',
  },
  {
    name: 'pod-cidr overlapping the node subnet',
    toml: '[network]\nsubnet = "10.22.0.0/16"\npod-cidr = "10.22.128.0/17"\n',
    expect: 'network.subnet 10.22.0.0/16 overlaps network.pod-cidr 10.22.128.0/17',
  },
  {
    name: 'a bind-mount src that does not exist',
    toml: '[[bindmount.read-only]]\nsrc = "/nonexistent/kube-spawn-test"\ndst = "/data"\n',
    expect: 'bindmount src /nonexistent/kube-spawn-test does not exist',
  },
  {
    name: 'a bind mount without dst',
    toml: '[[bindmount.read-write]]\nsrc = "/tmp"\n',
    expect: 'bindmount.read-write[0] needs the key "dst"',
  },
  {name: 'kubernetes-version 1.19.0', toml: 'kubernetes-version = "1.19.0"\n', expect: 'kubernetes-version "1.19.0" is not supported'},
  {name: 'kubernetes-version latest', toml: 'kubernetes-version = "latest"\n', expect: 'kubernetes-version "latest" is not supported'},
  {
    name: '--kubernetes-version latest',
    args: ['create', '--kubernetes-version', 'latest'],
    expect: 'kubernetes-version "latest" is not supported',
  },
  {
    name: 'a timeout that is not a duration',
    toml: '[runtime-config]\ntimeout = "soon"\n',
    expect: 'runtime-config.timeout "soon" is not a duration',
  },
  {
    name: 'a missing config file',
    args: ['create', '--config', '/nonexistent/kspawn.toml'],
    expect: 'cannot read config file /nonexistent/kspawn.toml',
  },
  {
    name: 'create over an existing cluster',
    args: ['create', '-c', 'keep'],
    expect: /cluster "keep" already exists in .*: use another --cluster-name, or remove it first with "kube-spawn destroy -c keep"$/,
  },
  {
    name: 'create over an existing cluster named in the file',
    toml: 'cluster-name = "keep"\nnodes = 1\n',
    expect: 'cluster "keep" already exists',
  },
  {name: 'destroy of an unknown cluster', args: ['destroy', '-c', 'nope'], expect: /no cluster "nope" in .*: known clusters: keep$/},
  {name: 'destroy with a bad name', args: ['destroy', '-c', '../etc'], expect: 'cluster name "../etc" is not a lower-case DNS-1123 label'},
  {name: 'start of an unknown cluster', args: ['start', '-c', 'nope'], expect: 'no cluster "nope"'},
  {name: 'stop of an unknown cluster', args: ['stop', '-c', 'nope'], expect: 'no cluster "nope"'},
  {name: 'status of an unknown cluster', args: ['status', '-c', 'nope'], expect: 'no cluster "nope"'},
  {
    name: 'image-debian suite and its old name release disagreeing',
    toml: '[plugin-config.image-debian]\nrelease = "bookworm"\nsuite = "trixie"\n',
    expect: /suite = "trixie" and release = "bookworm" disagree: release is the old name of suite, drop it: fix the definition/,
  },
  {
    name: 'an image-debian suite that is not a name',
    toml: '[plugin-config.image-debian]\nsuite = "../etc"\n',
    expect: 'suite must be a Debian suite name such as "trixie", not "../etc"',
  },
  {
    name: 'a pod CIDR without a /24 for every node, before anything is written',
    toml: 'nodes = 3\n[network]\npod-cidr = "10.244.0.0/23"\n',
    expect: 'network.pod-cidr 10.244.0.0/23 holds 2 /24 node ranges, but the cluster has 3 nodes',
  },
  {
    name: 'an offline bundle that does not exist, before anything is written',
    toml: '[kubernetes]\nsource = "/nonexistent/kube-spawn-bundle"\n',
    expect: 'offline bundle /nonexistent/kube-spawn-bundle does not exist or is not a directory',
  },
  {name: 'destroy of the reserved name cache', args: ['destroy', '-c', 'cache'], expect: 'cluster name "cache" is reserved'},
  {
    name: 'a feature gate name that is not one',
    toml: '[kubernetes.feature-gates]\nfoo-bar = true\n',
    expect: 'kubernetes.feature-gates has the entry "foo-bar", which is not a feature gate name, as in SomeFeature = true',
  },
  {
    name: 'a feature gate that is not true or false',
    toml: '[kubernetes.feature-gates]\nSomeFeature = "yes"\n',
    expect: 'kubernetes.feature-gates.SomeFeature must be true or false (got string "yes")',
  },
  {
    name: 'an extra arg with leading dashes',
    toml: '[kubernetes.api-server-extra-args]\n"--v" = "2"\n',
    expect: 'kubernetes.api-server-extra-args has the entry "--v", which is not a flag name without leading dashes',
  },
  {
    name: 'a kubelet extra arg kube-spawn sets itself',
    toml: '[kubernetes.kubelet-extra-args]\nnode-ip = "10.0.0.1"\n',
    expect: 'kubernetes.kubelet-extra-args.node-ip is set by kube-spawn',
  },
  {
    name: 'kube-proxy-mode nftables on Kubernetes 1.20',
    toml: 'kubernetes-version = "v1.20.2"\n[kubernetes]\nkube-proxy-mode = "nftables"\n',
    expect: 'kubernetes.kube-proxy-mode = "nftables" needs Kubernetes 1.31 or newer, not v1.20.2',
  },
  {
    name: 'a patches directory that does not exist',
    toml: '[kubernetes]\npatches = "/nonexistent/kube-spawn-patches"\n',
    expect: 'kubernetes.patches /nonexistent/kube-spawn-patches does not exist or is not a directory',
  },
  {
    name: 'a config patch that matches no kubeadm document',
    toml: '[kubernetes]\nconfig-patches = ["kind: EtcdConfiguration\\nfoo: 1"]\n',
    expect: 'kubernetes.config-patches[0] patches EtcdConfiguration, which matches no kubeadm config document for v1.20.2',
  },
  {
    name: 'a config patch that is not YAML',
    toml: '[kubernetes]\nconfig-patches = ["kind: [ClusterConfiguration"]\n',
    expect: 'kubernetes.config-patches[0] does not parse as YAML',
  },
]

async function runCase(c: Case, json: boolean): Promise<void> {
  const {work, root, cleanup} = await makeWorkDir()
  try {
    const args = [...(c.args ?? ['create']), '--dir', root]
    if (c.toml !== undefined) {
      await writeFile(join(work, 'kspawn.toml'), c.toml)
      args.push('--config', 'kspawn.toml')
    }
    if (json) args.push('--json')
    const before = await snapshotTree(root)
    const result = await kubeSpawn(args, {cwd: work})
    assert.deepEqual(await snapshotTree(root), before, 'the state root is unchanged')

    const expected = c.exitCode ?? 2
    assert.equal(result.code, expected, `exit code; stderr: ${result.stderr}`)
    if (json) {
      assert.equal(result.stderr, '', 'nothing on stderr under --json')
      const out = JSON.parse(result.stdout) as {error: {message: string; exitCode: number}}
      assert.equal(out.error.exitCode, expected)
      assert.doesNotMatch(out.error.message, /\n/)
      if (typeof c.expect === 'string')
        assert.ok(out.error.message.includes(c.expect), `"${out.error.message}" should contain "${c.expect}"`)
      else assert.match(out.error.message, c.expect)
      return
    }
    assert.equal(result.stdout, '', 'nothing on stdout')
    const lines = stderrLines(result)
    assert.equal(lines.length, 1, `one line on stderr, got:\n${result.stderr}`)
    assert.ok(lines[0].startsWith('kube-spawn: '), lines[0])
    if (typeof c.expect === 'string') assert.ok(lines[0].includes(c.expect), `"${lines[0]}" should contain "${c.expect}"`)
    else assert.match(lines[0], c.expect)
  } finally {
    await cleanup()
  }
}

describe('bad input: one line on stderr, nothing changed', {concurrency: 4}, () => {
  for (const c of cases) it(c.name, () => runCase(c, false))
})

describe('bad input with --json: the error as JSON on stdout, nothing changed', {concurrency: 4}, () => {
  const names = new Set([
    'malformed TOML names the line and column',
    'nodes = 0',
    'an unknown runtime lists the installed ones',
    'cluster name ../etc',
    'pod-cidr overlapping the node subnet',
    'kubernetes-version latest',
    'create over an existing cluster',
    'destroy of an unknown cluster',
  ])
  for (const c of cases.filter((c) => names.has(c.name))) it(c.name, () => runCase(c, true))
})

describe('flag errors', () => {
  it('an unknown flag fails without touching the state root', async () => {
    const {root, cleanup} = await makeWorkDir()
    try {
      const before = await snapshotTree(root)
      const result = await kubeSpawn(['create', '--dir', root, '--nodez', '3'])
      assert.notEqual(result.code, 0)
      assert.match(result.stderr, /--nodez/)
      assert.deepEqual(await snapshotTree(root), before)
    } finally {
      await cleanup()
    }
  })
})
