/**
 * Nodes booted from image-flatcar (issue 12), end to end on real nodes: a stand-in in Flatcar's format
 * (the cached Debian bookworm root with containerd, given Flatcar's os-release and /opt/cni/bin, put
 * into ext4 partition 9 "ROOT" of a GPT disk, bzip2'd, with DIGESTS clearsigned by a test key) is
 * served on 127.0.0.1; the plugin downloads, verifies and unpacks it, and a 2-node cluster with
 * containerd (its Flatcar variant: /opt/cni/bin, CONTAINERD_CONFIG) boots from it and reaches Ready.
 * The real Flatcar image is not booted here (docs/plugins.md#flatcar).
 *
 *   node --test --test-concurrency=1 --test-reporter=spec test/integration/flatcar-nodes.test.ts
 */
import assert from 'node:assert/strict'
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {type FileServer, type TestKey, buildFlatcarStandin, makeTestKey, serveDirectory} from '../helpers/flatcar-standin.ts'
import {
  CREATE_TIMEOUT,
  MINUTE,
  SKIP_REASON,
  defaultNodeRoot,
  explain,
  fixtureBundle,
  kubeSpawn,
  log,
  runProgram,
  seconds,
  useTestCluster,
} from './helpers.ts'

const VERSION = '9999.0.0'

describe('Flatcar nodes from a stand-in image (2 nodes, containerd, isolated, offline bundle)', {skip: SKIP_REASON}, () => {
  let work: string
  let key: TestKey
  let server: FileServer
  let cgroupV1 = false

  // Registered before useTestCluster's hook, so the definition below can name the server and the key.
  before(
    async () => {
      work = await mkdtemp(join(tmpdir(), 'ks-flatcar-nodes-'))
      cgroupV1 = !(await readFile('/sys/fs/cgroup/cgroup.controllers', 'utf8').then(Boolean, () => false))
      // The Debian root containerd nodes use, from the shared test cache (built once if missing).
      const rootfs = await defaultNodeRoot()
      key = await makeTestKey('flatcar-nodes')
      const started = Date.now()
      await buildFlatcarStandin({
        root: rootfs,
        dir: join(work, 'release'),
        version: VERSION,
        key,
        symlinks: [{path: '/opt/cni/bin', target: '/usr/lib/cni'}],
      })
      log(`stand-in built from ${rootfs} in ${seconds(Date.now() - started)}`)
      server = await serveDirectory(join(work, 'release'))
    },
    {timeout: CREATE_TIMEOUT},
  )
  after(async () => {
    await server?.close()
    await key?.dispose()
    if (work) await rm(work, {recursive: true, force: true})
  })

  const cluster = useTestCluster('f', {
    label: 'flatcar',
    nodes: 2,
    kubeconfig: true,
    // The image is chosen with --image below: extra lands after the [kubernetes] table.
    extra: () => `
[plugin-config.image-flatcar]
version = "${VERSION}"
base-url = "${server.base}"
signing-key = "${key.publicKey}"
# The stand-in runs Debian bookworm's systemd 252, which still boots on cgroup v1.
allow-cgroup-v1 = ${cgroupV1}
`,
  })

  it('up: the image is downloaded, verified and unpacked, and both nodes reach Ready', {timeout: CREATE_TIMEOUT}, async () => {
    const started = Date.now()
    const up = await cluster.cli.run(['up', '--config', cluster.config, '--image', 'flatcar'], CREATE_TIMEOUT)
    assert.equal(up.code, 0, explain('kube-spawn up', up))
    log(`up in ${seconds(Date.now() - started)}`)
    assert.match(up.stdout, /Build the flatcar base image flatcar-stable-9999\.0\.0-/)
    assert.ok(
      server.requests.some((path) => path.endsWith('flatcar_developer_container.bin.bz2')),
      'the image was downloaded',
    )
  })

  it(
    'the nodes run the stand-in (ID=flatcar) with containerd configured the Flatcar way, and the cluster schedules a pod',
    {timeout: 5 * MINUTE},
    async () => {
      for (const node of cluster.machines) {
        const release = await cluster.cli.exec(node, ['cat', '/etc/os-release'])
        assert.match(release.stdout, /^ID=flatcar$/m, `${node}: ${explain('cat /etc/os-release', release)}`)
        const env = await cluster.cli.exec(node, ['systemctl', 'show', '-p', 'Environment', 'containerd.service'])
        assert.match(env.stdout, /CONTAINERD_CONFIG=\/etc\/containerd\/config\.toml/, `${node}: ${explain('systemctl show', env)}`)
        const config = await cluster.cli.exec(node, ['cat', '/etc/containerd/config.toml'])
        assert.match(config.stdout, /bin_dir = "\/opt\/cni\/bin"/, node)
      }
      const bin = join(await fixtureBundle(), 'bin', 'kubectl')
      const kubectl = (args: string[]) =>
        runProgram(bin, [`--kubeconfig=${join(cluster.cli.clusterDir, 'admin.conf')}`, '--request-timeout=30s', ...args], {
          timeoutMs: 4 * MINUTE,
        })
      const nodes = await kubectl(['get', 'nodes', '--no-headers'])
      assert.equal(
        nodes.stdout
          .trim()
          .split('\n')
          .filter((l) => / Ready /.test(l)).length,
        2,
        explain('kubectl get nodes', nodes),
      )
      const run = await kubectl([
        'run',
        'probe',
        '--image=docker.io/library/busybox:1.35',
        '--image-pull-policy=Never',
        '--restart=Never',
        '--',
        'sleep',
        '3600',
      ])
      assert.equal(run.code, 0, explain('kubectl run', run))
      const ready = await kubectl(['wait', '--for=condition=Ready', 'pod/probe', '--timeout=180s'])
      assert.equal(ready.code, 0, explain('kubectl wait', ready))
    },
  )

  it('a second up of the same version makes no second download (the root is cached by version)', {timeout: 2 * MINUTE}, async () => {
    const dry = await kubeSpawn(['up', '--dry-run', '--config', cluster.config, '--image', 'flatcar', '--dir', join(work, 'other-root')], {
      timeoutMs: MINUTE,
    })
    assert.equal(dry.code, 0, explain('up --dry-run', dry))
    assert.match(
      dry.stdout,
      /Build the flatcar base image flatcar-stable-9999\.0\.0-\w+ +\(skipped: image flatcar-stable-9999\.0\.0-\w+ is cached\)/,
    )
  })
})
