/**
 * The --dry-run plans of create, up, start, stop and destroy, as golden files: which tasks run, in
 * which order, owned by whom, and why one would be skipped. A refactor of the pipelines must leave
 * them byte for byte the same; UPDATE_GOLDEN=1 rewrites them when a change of plan is meant.
 */
import assert from 'node:assert/strict'
import {mkdir, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {FIXTURES, kubeSpawn, makeWorkDir, snapshotTree} from '../helpers/cli.ts'

const GOLDEN = join(FIXTURES, 'golden', 'plans')

/** A second cluster like "keep", but initialized, so that start and stop show their skip reasons. */
async function addInitializedCluster(root: string): Promise<void> {
  const keep = await readFile(join(root, 'keep', 'kspawn.toml'), 'utf8')
  const keepi = keep
    .replaceAll('"keep"', '"keepi"')
    .replaceAll('ks-keep-', 'ks-keepi-')
    .replace('cluster-subnet = "10.22.5.0/24"', 'cluster-subnet = "10.22.6.0/24"')
    .replaceAll('"10.22.5.', '"10.22.6.')
    .replace('keepid.', 'keepii.')
    .replace('initialized = false', 'initialized = true')
  await mkdir(join(root, 'keepi'), {recursive: true, mode: 0o700})
  await writeFile(join(root, 'keepi', 'kspawn.toml'), keepi, {mode: 0o600})
}

const PLAN_TOML = `cluster-name = "cfg"
nodes = 1
cni = "none"
kubernetes-version = "v1.31.0"
`

/** Three control planes, a worker and the registry (issue 13): the load balancer's and the registry's tasks run. */
const HA_TOML = `cluster-name = "ha"
nodes = 4
control-planes = 3

[registry]
enabled = true
port = 5917
`

/** Lines that depend on this machine, not on the plan: the state root's filesystem, and the image's content hash. */
function normalize(text: string): string {
  return text
    .replace(/^( +\[workaround-storage-pool\]) .*$/gm, '$1 <depends on the state root’s filesystem>')
    .replace(/\bdebian-([a-z]+)-[0-9a-f]{16}\b/g, 'debian-$1-<key>')
}

describe('the --dry-run plans (golden)', () => {
  let work: string
  let root: string
  let cleanup: () => Promise<void>
  let pluginHome: string
  let snapshot: Record<string, string>
  before(async () => {
    ;({work, root, cleanup} = await makeWorkDir())
    await addInitializedCluster(root)
    await writeFile(join(work, 'plan.toml'), PLAN_TOML)
    await writeFile(join(work, 'ha.toml'), HA_TOML)
    snapshot = await snapshotTree(root)
    // Plugins a developer installed or linked on this machine must not show up in the plans.
    pluginHome = await mkdtemp(join(tmpdir(), 'ks-plans-home-'))
  })
  after(async () => {
    assert.deepEqual(await snapshotTree(root), snapshot, 'no dry run changed the state root')
    await cleanup()
    await rm(pluginHome, {recursive: true, force: true})
  })

  const cases: Array<[name: string, args: (work: string) => string[]]> = [
    ['create', () => ['create', '-c', 'dry', '--nodes', '2']],
    ['create-config', (w) => ['create', '--config', join(w, 'plan.toml')]],
    ['up', () => ['up', '-c', 'dry', '--nodes', '2']],
    ['up-skip-init', () => ['up', '--skip-cluster-init', '-c', 'dry', '--nodes', '1']],
    ['up-config', (w) => ['up', '--config', join(w, 'plan.toml')]],
    ['up-ha-registry', (w) => ['up', '--config', join(w, 'ha.toml')]],
    ['start', () => ['start', '-c', 'keep']],
    ['start-skip-init', () => ['start', '--skip-cluster-init', '-c', 'keep']],
    ['start-initialized', () => ['start', '-c', 'keepi']],
    ['stop', () => ['stop', '-c', 'keep']],
    ['stop-initialized', () => ['stop', '-c', 'keepi']],
    ['destroy', () => ['destroy', '-c', 'keep']],
  ]
  for (const [name, args] of cases) {
    it(name, async () => {
      const result = await kubeSpawn([...args(work), '--dry-run', '--dir', root], {
        cwd: work,
        env: {XDG_DATA_HOME: pluginHome, XDG_CONFIG_HOME: pluginHome, XDG_CACHE_HOME: pluginHome},
      })
      assert.equal(result.code, 0, result.stderr)
      assert.equal(result.stderr, '')
      const actual = normalize(result.stdout)
      const file = join(GOLDEN, `${name}.txt`)
      if (process.env.UPDATE_GOLDEN) await writeFile(file, actual)
      assert.equal(actual, await readFile(file, 'utf8'), `the ${name} plan differs from ${file} (UPDATE_GOLDEN=1 rewrites it)`)
    })
  }
})
