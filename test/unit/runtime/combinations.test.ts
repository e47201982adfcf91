/**
 * Every runtime × image × Kubernetes version × Kubernetes source × cgroup version the shipped plugins
 * know: each is accepted, or refused in exactly one line that names what is supported. This is what
 * create and up check before anything is written (the runtime's fit and refusal, then the image's).
 */
import assert from 'node:assert/strict'
import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import type {HostInfo, ImageProvider, RuntimeProvider} from '@kube-spawn/sdk'

import {resolveRuntime, runtimeQuery, runtimeRefusal} from '../../../dist/runtime/compat.js'
import {kubeSpawn, makeWorkDir, snapshotTree, stderrLines} from '../helpers/cli.ts'
import {debian} from '../../../plugins/image-debian/dist/index.js'
import {flatcar} from '../../../plugins/image-flatcar/dist/index.js'
import {containerd} from '../../../plugins/runtime-containerd/dist/index.js'
import {crio} from '../../../plugins/runtime-crio/dist/index.js'
import {docker} from '../../../plugins/runtime-docker/dist/index.js'

const RUNTIMES: RuntimeProvider[] = [containerd, docker, crio]
const IMAGES: ImageProvider[] = [debian, flatcar]
const VERSIONS = ['v1.20.2', 'v1.23.17', 'v1.24.0', 'v1.28.0', 'v1.31.4']
const SOURCES = ['/var/cache/kube-spawn-fixtures/kubernetes-v1.20.2', 'https://dl.k8s.io']
const CGROUPS = [1, 2] as const

function host(cgroupVersion: 1 | 2): HostInfo {
  return {
    machined: cgroupVersion === 2,
    capSysResource: true,
    cgroupVersion,
    hasLibModules: true,
    systemdPid1: cgroupVersion === 2,
    kernel: '6.1.0',
    timeoutScale: 1,
  }
}

function cluster(runtime: string, image: string, version: string, source: string) {
  return {
    clusterName: 'combo',
    containerRuntime: runtime,
    image,
    kubernetesVersion: version,
    nodes: 3,
    token: 'abcdef.0123456789abcdef',
    cni: 'bridge' as const,
    kubernetes: {source},
    network: {subnet: '10.22.0.0/16', podCidr: '10.244.0.0/16', serviceCidr: '10.96.0.0/12', egress: false},
    bindmount: {readOnly: [], readWrite: []},
    runtimeConfig: {cgroupPerQos: true, failSwapOn: false, timeout: '10m', useLegacyCgroupDriver: true},
    pluginConfig: {'image-flatcar': {version: '4152.2.0'}},
    machines: [],
    state: {initialized: false},
  }
}

/** What create says about one combination: undefined (accepted) or its refusal. */
function verdict(runtime: RuntimeProvider, image: ImageProvider, version: string, source: string, cgroup: 1 | 2): string | undefined {
  const c = cluster(runtime.name, image.name, version, source)
  const query = runtimeQuery(c, image, host(cgroup))
  const resolved = resolveRuntime(runtime, query, `runtime-${runtime.name}`)
  return (
    runtimeRefusal(resolved, query) ??
    image.refuse?.({
      cluster: c,
      runtime: resolved,
      host: host(cgroup),
      pluginConfig: (name) => (c.pluginConfig as Record<string, Record<string, unknown>>)[name] ?? {},
    })
  )
}

/** The support table of docs/plugins.md, as a function: the pattern the refusal must match, or undefined. */
function expected(runtime: string, image: string, version: string, source: string, cgroup: 1 | 2): RegExp | undefined {
  const minor = Number(version.split('.')[1])
  if (image === 'flatcar') {
    if (runtime !== 'containerd')
      return new RegExp(
        `^container runtime ${runtime} has no packages for flatcar images \\(image flatcar\\); it has packages for: debian$`,
      )
    if (cgroup === 1) return /does not boot on this cgroup v1 host/
    return undefined
  }
  if (runtime === 'docker' && minor >= 24 && source.startsWith('/'))
    return /needs cri-dockerd 0\.3\.16, downloaded from GitHub, while this cluster installs Kubernetes from an offline bundle/
  if (runtime === 'cri-o' && minor < 28) return /^CRI-O's packages exist for Kubernetes 1\.28 and newer/
  return undefined
}

describe('runtime × image × Kubernetes × source × cgroup', () => {
  let accepted = 0
  let refused = 0
  for (const runtime of RUNTIMES)
    for (const image of IMAGES)
      it(`${runtime.name} on ${image.name}`, () => {
        for (const version of VERSIONS)
          for (const source of SOURCES)
            for (const cgroup of CGROUPS) {
              const what = `${runtime.name} × ${image.name} × ${version} × ${source.startsWith('/') ? 'bundle' : 'release'} × cgroup v${cgroup}`
              const said = verdict(runtime, image, version, source, cgroup)
              const want = expected(runtime.name, image.name, version, source, cgroup)
              if (want === undefined) {
                assert.equal(said, undefined, `${what} should be accepted`)
                accepted++
              } else {
                assert.match(said ?? '(accepted)', want, `${what}`)
                assert.doesNotMatch(said!, /\n/, `${what}: the refusal is one line`)
                refused++
              }
            }
      })
  it('both kinds occur', () => {
    assert.ok(accepted > 0 && refused > 0, `accepted ${accepted}, refused ${refused}`)
  })
})

describe('kube-spawn providers --json', () => {
  it('lists the runtimes containerd, docker and cri-o and the images debian and flatcar, each with its plugin', async () => {
    const result = await kubeSpawn(['providers', '--json'], {timeoutMs: 60_000})
    assert.equal(result.code, 0, result.stderr)
    const listed = (JSON.parse(result.stdout) as Array<{kind: string; name: string; plugin: string}>).map(
      (p) => `${p.kind} ${p.name} ${p.plugin}`,
    )
    for (const line of [
      'runtime containerd runtime-containerd',
      'runtime docker runtime-docker',
      'runtime cri-o runtime-crio',
      'image debian image-debian',
      'image flatcar image-flatcar',
    ])
      assert.ok(listed.includes(line), `providers --json should list "${line}": ${listed.join('; ')}`)
  })
})

describe('create refuses an unsupported combination before writing anything', () => {
  const cases: Array<[what: string, toml: string, refusal: RegExp]> = [
    [
      'docker on Flatcar',
      'container-runtime = "docker"\nimage = "flatcar"\n[plugin-config.image-flatcar]\nversion = "4152.2.0"\n',
      /^kube-spawn: container runtime docker has no packages for flatcar images \(image flatcar\); it has packages for: debian: choose another container-runtime/,
    ],
    [
      'cri-o on Kubernetes 1.20',
      'container-runtime = "cri-o"\nkubernetes-version = "v1.20.2"\n',
      /^kube-spawn: CRI-O's packages exist for Kubernetes 1\.28 and newer/,
    ],
  ]
  for (const [what, toml, refusal] of cases)
    it(what, async () => {
      const {work, root, cleanup} = await makeWorkDir()
      try {
        const config = join(work, 'kspawn.toml')
        await writeFile(config, `cluster-name = "combo"\nnodes = 1\n${toml}`)
        const before = await snapshotTree(root)
        const result = await kubeSpawn(['create', '--config', config, '--dir', root], {
          timeoutMs: 60_000,
          env: {XDG_DATA_HOME: work, XDG_CONFIG_HOME: work},
        })
        assert.notEqual(result.code, 0)
        assert.equal(stderrLines(result).length, 1, result.stderr)
        assert.match(stderrLines(result)[0], refusal)
        assert.deepEqual(await snapshotTree(root), before, 'nothing is written, the existing cluster is untouched')
      } finally {
        await cleanup()
      }
    })
})
