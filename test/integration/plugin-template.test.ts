/**
 * The third-party plugin template (examples/plugin-template) end to end, as a user would see it:
 * copied out of the repository, `npm install`ed (its @kube-spawn/sdk dependency as packed from
 * plugins/sdk), built, tested and packed with npm, installed into a fresh CLI data directory with
 * "plugins:install", visible in "plugins", "providers" and "up --dry-run", its post-boot task run in a
 * real one-node cluster (isolated, --skip-cluster-init), then uninstalled; also linked and unlinked.
 * Last, what happens when a user plugin has the name of a core plugin.
 *
 * Needs root and the built repository (npm run build). It never reaches the npm registry: npm install
 * gets the SDK, typescript and @types/node from a registry on 127.0.0.1 (test/helpers/local-registry.ts)
 * and every other npm runs with --offline. The cluster is isolated: [network] egress = false,
 * Kubernetes from the offline bundle of ../shared/fixtures/kubernetes/prepare-bundle.
 */
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {cp, mkdir, mkdtemp, readdir, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'
import {fileURLToPath} from 'node:url'
import {promisify} from 'node:util'

import {cleanEnv, kubeSpawn, runProgram} from '../helpers/cli.ts'
import {startLocalRegistry} from '../helpers/local-registry.ts'

const REPO = fileURLToPath(new URL('../../', import.meta.url))
const TEMPLATE = join(REPO, 'examples', 'plugin-template')
const PREPARE_BUNDLE = join(REPO, '..', 'shared', 'fixtures', 'kubernetes', 'prepare-bundle')
const CLEANUP = join(REPO, 'test', 'integration', 'cleanup.sh')
/** The npm that @oclif/plugin-plugins itself runs, so this test does not depend on PATH. */
const NPM_CLI = join(REPO, 'node_modules', 'npm', 'bin', 'npm-cli.js')
/** Shared by every test run so the Debian image is built once. */
const TEST_CACHE_DIR = '/var/cache/kube-spawn-test'

const CLUSTER = 'kst-plugin'
const NODE = `ks-${CLUSTER}-cp`
const PLUGIN = 'kube-spawn-plugin-hello'
const HELLO_PREFLIGHT = '[hello] Check the hello settings'
const HELLO_POST_BOOT = '[hello] Say hello from every node'
const MINUTE = 60_000

const run = promisify(execFile)

interface Result {
  code: number | null
  stdout: string
  stderr: string
}

/** The directories of one run: a state root the cleanup script knows, and a work dir for the rest. */
let stateRoot = ''
let work = ''
let dataDir = ''
let copy = ''
let tarball = ''
let clusterStarted = false
let env: Record<string, string> = {}

/** Runs a program in the shared clean environment (test/helpers/cli.ts) plus `env`. */
function spawnCollect(command: string, args: string[], options: {cwd: string; env: Record<string, string>}): Promise<Result> {
  return runProgram(command, args, {cwd: options.cwd, fullEnv: cleanEnv(options.env)})
}

/** `node bin/run.js ...args` with this run's data dir, state root, cache and kubeconfig. */
function cli(...args: string[]): Promise<Result> {
  return kubeSpawn(args, {cwd: work, env})
}

/**
 * plugins:install with npm forced offline and an empty npm cache (plugin-plugins passes the environment
 * on to npm): a tarball whose only peer dependency is optional installs without fetching anything.
 */
function installOffline(tgz: string): Promise<Result> {
  const npmCache = join(work, `npm-cache-${Date.now()}`)
  return spawnCollect(process.execPath, [join(REPO, 'bin', 'run.js'), 'plugins:install', `file:${tgz}`], {
    cwd: work,
    env: {...env, npm_config_offline: 'true', npm_config_cache: npmCache},
  })
}

/** npm with a cache of its own, offline unless a --registry is given: a test must not reach the public registry. */
async function npm(cwd: string, ...args: string[]): Promise<Result> {
  const offline: Record<string, string> = args.includes('--registry') ? {} : {npm_config_offline: 'true'}
  const result = await spawnCollect(process.execPath, [NPM_CLI, ...args, '--no-audit', '--no-fund'], {
    cwd,
    env: {...offline, npm_config_cache: join(work, 'npm-cache'), npm_config_update_notifier: 'false'},
  })
  assert.equal(result.code, 0, `npm ${args.join(' ')} in ${cwd}:\n${result.stdout}\n${result.stderr}`)
  return result
}

function ok(result: Result, what: string): Result {
  assert.equal(result.code, 0, `${what} exited ${result.code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`)
  return result
}

/** The user and linked plugins (and with core, the core ones) as `plugins --json` lists them. */
async function pluginList(core = false): Promise<Array<{name: string; type: string; version: string; root: string}>> {
  const result = ok(await cli('plugins', '--json', ...(core ? ['--core'] : [])), 'plugins --json')
  const list = JSON.parse(result.stdout) as Array<{name: string; type: string; version: string; root: string}>
  return list.map(({name, type, version, root}) => ({name, type, version, root}))
}

async function providerRows(): Promise<Array<{kind: string; name: string; plugin: string; description: string}>> {
  return JSON.parse(ok(await cli('providers', '--json'), 'providers --json').stdout)
}

/** The plan `up --dry-run` prints for the test cluster (nothing is created). */
async function dryRunPlan(config = join(work, 'cluster.toml')): Promise<string> {
  return ok(await cli('up', '--dry-run', '--skip-cluster-init', '--config', config), 'up --dry-run').stdout
}

/** The lines of one stage in a printed plan. */
function stageLines(plan: string, stage: string): string[] {
  const lines = plan.split('\n')
  const start = lines.indexOf(`  ${stage}`)
  if (start < 0) return []
  const end = lines.findIndex((line, i) => i > start && /^ {2}\S/.test(line))
  return lines
    .slice(start + 1, end < 0 ? undefined : end)
    .map((line) => line.trim())
    .filter((line) => line !== '')
}

async function destroyCluster(): Promise<void> {
  if (!clusterStarted) return
  await cli('destroy', '-c', CLUSTER).catch(() => undefined)
  clusterStarted = false
}

describe('the plugin template as a third-party plugin', {timeout: 20 * MINUTE}, () => {
  before(async () => {
    stateRoot = await mkdtemp('/tmp/kube-spawn-test-')
    work = await mkdtemp(join(tmpdir(), 'ks-plugin-template-'))
    dataDir = join(work, 'data')
    env = {
      KUBE_SPAWN_DATA_DIR: dataDir,
      XDG_DATA_HOME: join(work, 'xdg-data'),
      XDG_CONFIG_HOME: join(work, 'xdg-config'),
      KUBE_SPAWN_ARTIFACT_CACHE_DIR: TEST_CACHE_DIR,
      KUBE_SPAWN_DIR: stateRoot,
      KUBECONFIG: join(work, 'kubeconfig'),
      // plugins:uninstall runs npm too
      npm_config_offline: 'true',
    }
    const bundle = (await run(PREPARE_BUNDLE, [], {timeout: 10 * MINUTE})).stdout.trim().split('\n').at(-1) ?? ''
    assert.ok(bundle.startsWith('/'), `prepare-bundle printed no path: ${bundle}`)
    // HARD RULE for every cluster a test starts: isolated (egress = false), Kubernetes from the offline bundle.
    const definition = (extra = '') =>
      `cluster-name = "${CLUSTER}"\nnodes = 1\n\n[kubernetes]\nsource = ${JSON.stringify(bundle)}\n\n[network]\negress = false\n${extra}`
    await writeFile(join(work, 'cluster.toml'), definition())
    await writeFile(join(work, 'disabled.toml'), definition('\n[plugin-config.hello]\nenabled = false\n'))
  })

  after(async () => {
    await destroyCluster()
    await run('bash', [CLEANUP, CLUSTER, stateRoot]).catch((error) => console.error(`cleanup.sh: ${error}`))
    await rm(work, {recursive: true, force: true})
    await rm(stateRoot, {recursive: true, force: true})
  })

  it(
    'installs, builds, passes its own tests and packs, from a copy of the template outside the repository',
    {timeout: 10 * MINUTE},
    async () => {
      copy = join(work, 'kube-spawn-plugin-hello')
      // A clean checkout of the folder: no node_modules, no build, no packs.
      await cp(TEMPLATE, copy, {recursive: true, filter: (src) => !/\/(node_modules|dist)(\/|$)|\.tgz$/.test(src.slice(TEMPLATE.length))})
      assert.ok(!(await readdir(copy)).includes('package-lock.json'), 'the template has no lockfile: its first npm install makes one')

      // The SDK as built (npm run build) and packed, and the devDependencies, served as the registry would.
      const registry = await startLocalRegistry(
        [join(REPO, 'plugins', 'sdk'), join(REPO, 'node_modules', 'typescript'), join(REPO, 'node_modules', '@types', 'node')],
        {workDir: work},
      )
      try {
        await npm(copy, 'install', '--registry', registry.url)
      } finally {
        await registry.close()
      }
      assert.ok(
        !(await readdir(join(copy, 'node_modules'))).includes('@oclif'),
        'the optional peer dependency @oclif/core is not installed',
      )

      await npm(copy, 'run', 'build')
      const tested = await npm(copy, 'test')
      assert.match(tested.stdout, /ℹ fail 0/)
      assert.doesNotMatch(tested.stdout, /ℹ pass 0/)

      const packed = await npm(copy, 'pack', '--pack-destination', work)
      const name = packed.stdout.trim().split('\n').at(-1) ?? ''
      assert.equal(name, `${PLUGIN}-0.1.0.tgz`)
      tarball = join(work, name)
      const {stdout: listing} = await run('tar', ['-tzf', tarball])
      const paths = listing.trim().split('\n')
      for (const path of ['README.md', 'dist/index.d.ts', 'dist/index.js', 'package.json', 'node_modules/@kube-spawn/sdk/dist/index.js'])
        assert.ok(paths.includes(`package/${path}`), `${path} is packed:\n${listing}`)
      // The SDK is bundled with its own dependencies; no sources, tests or devDependencies are packed.
      const bundled = new Set(paths.map((p) => /^package\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(p)?.[1]).filter(Boolean))
      assert.deepEqual([...bundled].sort(), ['@kube-spawn/sdk', 'p-wait-for', 'semver'])
      assert.deepEqual(
        paths.filter((p) => /^package\/(src|test)\//.test(p)),
        [],
      )
    },
  )

  it('installs the tarball into a fresh data dir without fetching anything else', async () => {
    assert.ok(tarball, 'the template was packed')
    // A bare path would be taken for a GitHub "user/repo"; local tarballs and directories take file:<absolute path>.
    const installed = ok(await installOffline(tarball), 'plugins:install')
    assert.match(installed.stdout, new RegExp(`^Installed ${PLUGIN} 0\\.1\\.0$`, 'm'))
    // The optional peer dependency on @oclif/core is not installed: the plugin is the only package.
    assert.deepEqual(
      (await readdir(join(dataDir, 'node_modules'))).filter((n) => !n.startsWith('.')),
      [PLUGIN],
    )

    const user = (await pluginList()).filter((p) => p.name === PLUGIN)
    assert.deepEqual(
      user.map(({name, type, version}) => ({name, type, version})),
      [{name: PLUGIN, type: 'user', version: '0.1.0'}],
    )
    assert.match(ok(await cli('plugins'), 'plugins').stdout, new RegExp(`^${PLUGIN} 0\\.1\\.0$`, 'm'))

    const rows = await providerRows()
    assert.deepEqual(
      rows.filter((r) => r.plugin === 'hello').map(({kind, name}) => ({kind, name})),
      [{kind: 'workaround', name: 'hello'}],
    )
    assert.match(ok(await cli('providers'), 'providers').stdout, /^workaround +hello +hello +Example plugin/m)
  })

  it('shows its tasks, owned by [hello], in up --dry-run; skipped when [plugin-config.hello] enabled = false', async () => {
    const plan = await dryRunPlan()
    assert.ok(stageLines(plan, 'preflight').includes(HELLO_PREFLIGHT), plan)
    const postBoot = stageLines(plan, 'post-boot')
    // Host tasks of a stage first, then plugin tasks in plugin-name order: the host's runtime wait comes before hello.
    assert.deepEqual(postBoot.at(-1), HELLO_POST_BOOT, plan)
    assert.ok(postBoot.indexOf('[kube-spawn] Wait until the container runtime answers in every node') < postBoot.indexOf(HELLO_POST_BOOT))

    const disabled = await dryRunPlan(join(work, 'disabled.toml'))
    const reason = '(skipped: disabled by [plugin-config.hello] enabled = false)'
    assert.ok(stageLines(disabled, 'preflight').includes(`${HELLO_PREFLIGHT}  ${reason}`), disabled)
    assert.ok(stageLines(disabled, 'post-boot').includes(`${HELLO_POST_BOOT}  ${reason}`), disabled)
  })

  it('runs its post-boot task in a real one-node cluster', {timeout: 15 * MINUTE}, async () => {
    clusterStarted = true
    const up = ok(await cli('up', '--config', join(work, 'cluster.toml'), '--skip-cluster-init'), 'up')
    assert.ok(
      up.stdout.split('\n').some((line) => line.includes(HELLO_POST_BOOT)),
      up.stdout,
    )
    assert.match(up.stdout, new RegExp(`Cluster "${CLUSTER}" is up with 1 nodes`))

    const hello = ok(await cli('exec', '-c', CLUSTER, NODE, '--', 'cat', '/etc/kube-spawn-hello'), 'exec')
    assert.equal(hello.stdout, `hello from ${NODE}\n`)

    ok(await cli('destroy', '-c', CLUSTER), 'destroy')
    clusterStarted = false
  })

  it('uninstalls: the plugin, its provider and its tasks are gone', async () => {
    ok(await cli('plugins:uninstall', PLUGIN), 'plugins:uninstall')
    assert.deepEqual(
      (await pluginList()).filter((p) => p.name === PLUGIN),
      [],
    )
    assert.deepEqual(
      (await providerRows()).filter((r) => r.plugin === 'hello'),
      [],
    )
    const plan = await dryRunPlan()
    assert.ok(!plan.includes('[hello]'), plan)
    assert.ok(stageLines(plan, 'post-boot').length > 0, plan)
  })

  it('links the template folder and unlinks it', async () => {
    assert.ok(copy, 'the template was built')
    // --no-install: the folder is built already; linking then runs no npm at all.
    const linked = ok(await cli('plugins:link', copy, '--no-install'), 'plugins:link')
    assert.match(linked.stdout, new RegExp(`^Linked ${PLUGIN} 0\\.1\\.0 from `, 'm'))
    assert.deepEqual(
      (await pluginList()).filter((p) => p.name === PLUGIN),
      [{name: PLUGIN, type: 'link', version: '0.1.0', root: copy}],
    )
    const plan = await dryRunPlan()
    assert.ok(stageLines(plan, 'post-boot').includes(HELLO_POST_BOOT), plan)

    ok(await cli('plugins:unlink', PLUGIN), 'plugins:unlink')
    assert.deepEqual(
      (await pluginList()).filter((p) => p.name === PLUGIN),
      [],
    )
    assert.ok(!(await dryRunPlan()).includes('[hello]'))
  })

  it('a user plugin with the name of a core plugin replaces it until it is uninstalled', async () => {
    // A stand-in for @kube-spawn/workaround-varlib: same name, other version, other provider description and task.
    const fake = join(work, 'fake-varlib')
    await mkdir(fake)
    await writeFile(
      join(fake, 'package.json'),
      JSON.stringify({
        name: '@kube-spawn/workaround-varlib',
        version: '99.0.0',
        type: 'module',
        main: 'index.js',
        files: ['index.js'],
        'kube-spawn': {apiVersion: '^1.0'},
        peerDependencies: {'@oclif/core': '>=5'},
        peerDependenciesMeta: {'@oclif/core': {optional: true}},
        oclif: {
          hooks: {
            'kube-spawn:providers': {target: './index.js', identifier: 'providers'},
            'kube-spawn:tasks': {target: './index.js', identifier: 'tasks'},
          },
        },
      }),
    )
    await writeFile(
      join(fake, 'index.js'),
      `export const providers = async () => ({workarounds: [{name: 'varlib', description: 'the user copy'}]})
export const tasks = async ({stage}) => (stage === 'pre-boot' ? [{title: 'The user copy', task: async () => {}}] : [])
`,
    )
    const packed = await npm(fake, 'pack', '--pack-destination', work)
    const fakeTarball = join(work, packed.stdout.trim().split('\n').at(-1) ?? '')

    const coreVarlib = '[workaround-varlib] Bind-mount the runtime data dir and /var/lib/kubelet from the host'
    assert.ok(stageLines(await dryRunPlan(), 'pre-boot').includes(coreVarlib))

    ok(await installOffline(fakeTarball), 'plugins:install (core name)')
    // Only one plugin of that name is loaded, the user's: user plugins load first and a name loads once.
    const varlib = (await pluginList(true)).filter((p) => p.name === '@kube-spawn/workaround-varlib')
    assert.deepEqual(
      varlib.map(({type, version}) => ({type, version})),
      [{type: 'user', version: '99.0.0'}],
    )
    assert.deepEqual(
      (await providerRows()).filter((r) => r.name === 'varlib').map((r) => r.description),
      ['the user copy'],
    )
    const preBoot = stageLines(await dryRunPlan(), 'pre-boot')
    assert.ok(preBoot.includes('[workaround-varlib] The user copy'), preBoot.join('\n'))
    assert.ok(!preBoot.includes(coreVarlib))

    // The core copy comes back with the uninstall; a core plugin itself cannot be uninstalled.
    ok(await cli('plugins:uninstall', '@kube-spawn/workaround-varlib'), 'plugins:uninstall (core name)')
    assert.deepEqual(
      (await pluginList(true)).filter((p) => p.name === '@kube-spawn/workaround-varlib').map(({type, version}) => ({type, version})),
      [{type: 'core', version: '0.1.0'}],
    )
    assert.ok(stageLines(await dryRunPlan(), 'pre-boot').includes(coreVarlib))
    const refused = await cli('plugins:uninstall', '@kube-spawn/runtime-containerd')
    assert.notEqual(refused.code, 0)
    assert.match(refused.stderr, /@kube-spawn\/runtime-containerd is not installed/)
  })
})
