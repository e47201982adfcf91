/**
 * runtime-crio's apt source, without booting a node: a stand-in cri-o .deb in a flat repository signed
 * with a throwaway key, served on 127.0.0.1, fetched and checked by fingerprint by the host
 * (resolvedPackages), written into a copy of the cached Debian root and installed there with apt-get
 * by image-debian (installFromSources). Then what create --dry-run says about cri-o.
 *
 * Needs root (chroot), dpkg-dev, apt-utils, gpg and a Debian root built by an earlier run in the test
 * cache; the apt part is skipped without them. Nothing leaves 127.0.0.1: the copy's Debian sources are
 * emptied, since the mirror is out of reach here (a real build has it, for skopeo and the CNI plugins).
 */
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {existsSync} from 'node:fs'
import {access, chmod, constants, mkdir, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {type Server, createServer} from 'node:http'
import type {AddressInfo} from 'node:net'
import {tmpdir} from 'node:os'
import {join, normalize} from 'node:path'
import {after, before, describe, it} from 'node:test'

import type {RuntimeProvider, RuntimeQuery} from '@kube-spawn/sdk'

import {resolvedPackages} from '../../dist/image/prepare.js'
import {run} from '../../dist/util/run.js'
import {debianOptions, imageKey, installFromSources} from '../../plugins/image-debian/dist/index.js'
import {crio} from '../../plugins/runtime-crio/dist/index.js'
import {kubeSpawn} from '../helpers/cli.ts'
import {snapshotTree} from '../unit/helpers/cli.ts'
import {CREATE_TIMEOUT, defaultNodeRoot} from './helpers.ts'

type ResolveContext = Parameters<typeof resolvedPackages>[0]
type BuildContext = Parameters<typeof installFromSources>[0]

const hasCommand = (command: string) => spawnSync('sh', ['-c', `command -v ${command}`]).status === 0
const MISSING = ['dpkg-deb', 'dpkg-scanpackages', 'apt-ftparchive', 'gpg', 'chroot'].filter((c) => !hasCommand(c))
const SKIP: string | false =
  process.getuid?.() !== 0
    ? 'needs root (chroot, and apt-get in it)'
    : MISSING.length > 0
      ? `needs ${MISSING.join(', ')} on the host (apt-get install dpkg-dev apt-utils gpg)`
      : false

function query(kubernetesVersion: string, config: Record<string, unknown>): RuntimeQuery {
  return {
    kubernetesVersion,
    kubernetesSource: 'https://dl.k8s.io',
    image: 'debian',
    family: 'debian',
    cgroupDriver: 'cgroupfs',
    host: {
      machined: true,
      capSysResource: true,
      cgroupVersion: 1,
      hasLibModules: true,
      systemdPid1: true,
      kernel: '6.1.0',
      timeoutScale: 1,
    },
    pluginConfig: (name) => (name === 'runtime-crio' ? config : {}),
  }
}

/** The runtime as the host resolves it for a cluster with these settings. */
const resolved = (config: Record<string, unknown>): RuntimeProvider => ({...crio, ...crio.variant!(query('v1.20.2', config))})

async function sh(argv: string[], cwd: string, env: Record<string, string> = {}): Promise<string> {
  const result = spawnSync(argv[0], argv.slice(1), {cwd, env: {...process.env, ...env}, encoding: 'utf8'})
  assert.equal(result.status, 0, `${argv.join(' ')} failed: ${result.stderr}`)
  return result.stdout
}

describe('runtime-crio: its apt source against a local repository', {skip: SKIP}, () => {
  let work: string
  let repo: string
  let server: Server
  let base: string
  let fingerprint: string
  let key: string
  /** Another key's public part: apt must refuse the repository when the keyring holds it instead. */
  let otherKey: string

  /** The default node root from the shared test cache (built when missing), copied for each chroot. */
  let sourceRoot: string

  before(
    async () => {
      sourceRoot = await defaultNodeRoot()
      work = await mkdtemp(join(tmpdir(), 'ks-crio-apt-'))
      repo = join(work, 'repo')
      const gnupg = join(work, 'gnupg')
      await mkdir(repo)
      await mkdir(gnupg, {mode: 0o700})
      const gpg = {GNUPGHOME: gnupg}

      // A throwaway signing key, without a passphrase.
      await sh(
        [
          'gpg',
          '--batch',
          '--passphrase',
          '',
          '--quick-gen-key',
          'kube-spawn test repository <test@kube-spawn.invalid>',
          'ed25519',
          'sign',
          'never',
        ],
        work,
        gpg,
      )
      const colons = await sh(['gpg', '--batch', '--with-colons', '--list-keys'], work, gpg)
      fingerprint = /^fpr:+([0-9A-F]{40}):/m.exec(colons)![1]

      // A stand-in cri-o: /usr/bin/crio and its unit.
      const pkg = join(work, 'pkg')
      await mkdir(join(pkg, 'DEBIAN'), {recursive: true})
      await mkdir(join(pkg, 'usr/bin'), {recursive: true})
      await mkdir(join(pkg, 'usr/lib/systemd/system'), {recursive: true})
      await writeFile(
        join(pkg, 'DEBIAN/control'),
        'Package: cri-o\nVersion: 1.28.0~kube-spawn-test\nArchitecture: all\nMaintainer: kube-spawn tests <test@kube-spawn.invalid>\nDescription: stand-in for CRI-O\n',
      )
      await writeFile(join(pkg, 'usr/bin/crio'), '#!/bin/sh\necho "crio stand-in"\n')
      await chmod(join(pkg, 'usr/bin/crio'), 0o755)
      await writeFile(join(pkg, 'usr/lib/systemd/system/crio.service'), '[Service]\nExecStart=/usr/bin/crio\n')
      await sh(['dpkg-deb', '--root-owner-group', '--build', pkg, join(repo, 'cri-o_1.28.0_all.deb')], work)

      // A flat repository, signed: Packages, Release, InRelease, Release.gpg, and the key as Release.key.
      await writeFile(join(repo, 'Packages'), await sh(['dpkg-scanpackages', '.', '/dev/null'], repo))
      await writeFile(join(work, 'Release'), await sh(['apt-ftparchive', 'release', '.'], repo))
      await writeFile(join(repo, 'Release'), await readFile(join(work, 'Release')))
      await sh(['gpg', '--batch', '--yes', '--clearsign', '-o', 'InRelease', 'Release'], repo, gpg)
      await sh(['gpg', '--batch', '--yes', '--armor', '--detach-sign', '-o', 'Release.gpg', 'Release'], repo, gpg)
      key = await sh(['gpg', '--batch', '--armor', '--export', fingerprint], work, gpg)
      await writeFile(join(repo, 'Release.key'), key)
      const other = {GNUPGHOME: join(work, 'gnupg-other')}
      await mkdir(other.GNUPGHOME, {mode: 0o700})
      await sh(
        ['gpg', '--batch', '--passphrase', '', '--quick-gen-key', 'another key <other@kube-spawn.invalid>', 'ed25519', 'sign', 'never'],
        work,
        other,
      )
      otherKey = await sh(['gpg', '--batch', '--armor', '--export'], work, other)

      server = createServer((request, response) => {
        const path = normalize(decodeURIComponent(new URL(request.url ?? '/', 'http://x').pathname))
        readFile(join(repo, path)).then(
          (body) => response.writeHead(200).end(body),
          () => response.writeHead(404).end(),
        )
      })
      await new Promise<void>((done) => server.listen(0, '127.0.0.1', done))
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    },
    {timeout: CREATE_TIMEOUT},
  )

  after(async () => {
    await new Promise((done) => server?.close(done))
    if (work) await rm(work, {recursive: true, force: true})
  })

  /** What resolvedPackages reads of the cluster's context. */
  const resolveContext = (runtime: RuntimeProvider): ResolveContext =>
    ({
      runtime,
      image: {name: 'debian', family: 'debian'},
      cacheDir: join(work, 'cache'),
      providerPlugins: {runtime: 'runtime-crio', image: 'image-debian'},
      run,
    }) as unknown as ResolveContext

  it('accepts Kubernetes 1.20 once repo-url names a repository', () => {
    assert.equal(crio.refuse!(query('v1.20.2', {'repo-url': base})), undefined)
  })

  it(
    'fetches the key by fingerprint, writes the source with signed-by, and apt-get installs cri-o in a chroot',
    {timeout: 10 * 60_000},
    async () => {
      const runtime = resolved({'repo-url': base, 'key-fingerprint': fingerprint.toLowerCase()})
      const packages = await resolvedPackages(resolveContext(runtime))
      assert.deepEqual(packages, {
        names: ['cri-o', 'containernetworking-plugins', 'skopeo'],
        aptSources: [{name: 'cri-o', entry: `${base}/ /`, key: {content: key}}],
      })

      const rootfs = join(work, 'rootfs')
      await sh(['cp', '-a', sourceRoot, rootfs], work)
      // The Debian mirror is out of reach here; only the local repository is asked.
      await writeFile(join(rootfs, 'etc/apt/sources.list'), '')
      const lines: string[] = []
      const build = {rootfs, packages, run, output: (line: string) => lines.push(line)} as unknown as BuildContext
      await installFromSources(build, ['cri-o'])

      assert.equal(await readFile(join(rootfs, 'etc/apt/keyrings/cri-o.asc'), 'utf8'), key)
      assert.equal(
        await readFile(join(rootfs, 'etc/apt/sources.list.d/cri-o.list'), 'utf8'),
        `deb [signed-by=/etc/apt/keyrings/cri-o.asc] ${base}/ /\n`,
      )
      await access(join(rootfs, 'usr/bin/crio'), constants.X_OK)
      assert.ok(existsSync(join(rootfs, 'usr/lib/systemd/system/crio.service')))
      assert.equal(
        await sh(['chroot', rootfs, 'dpkg-query', '-W', '-f', '${Status} ${Version}', 'cri-o'], work),
        'install ok installed 1.28.0~kube-spawn-test',
      )
      assert.ok(!existsSync(join(rootfs, 'usr/sbin/policy-rc.d')), 'the policy-rc.d of the install is removed')
      assert.deepEqual(lines, ["apt-get install cri-o from the runtime's apt sources"])

      // signed-by is what apt trusts: with another key in the keyring, apt-get update fails (on a root that has
      // not verified the repository before; otherwise apt only warns and keeps the old lists).
      await rm(join(rootfs, 'var/lib/apt/lists'), {recursive: true, force: true})
      await mkdir(join(rootfs, 'var/lib/apt/lists/partial'), {recursive: true})
      const wrongKey = {...packages, aptSources: packages.aptSources!.map((source) => ({...source, key: {content: otherKey}}))}
      await assert.rejects(
        installFromSources({...build, packages: wrongKey}, ['cri-o']),
        /chroot exited with 100: .*NO_PUBKEY .*is not signed/,
      )
    },
  )

  it('refuses a key that is not the pinned one, in one line naming the key and the expected fingerprint', async () => {
    const wrong = 'AB'.repeat(20)
    const runtime = resolved({'repo-url': base, 'key-fingerprint': wrong})
    await assert.rejects(resolvedPackages(resolveContext(runtime)), (error: Error & {hint?: string}) => {
      assert.equal(error.message, `the apt key of cri-o from ${base}/Release.key is not the key ${wrong} (it holds: ${fingerprint})`)
      assert.ok(!error.message.includes('\n'))
      assert.match(error.hint ?? '', /runtime plugin \(runtime-crio\)/)
      return true
    })
  })

  it("refuses the OBS key's fingerprint for a repository signed with another key (repo-url without key-fingerprint)", async () => {
    await assert.rejects(
      resolvedPackages(resolveContext(resolved({'repo-url': base}))),
      /is not the key 85B67D5C50100B1AC8CEFE49CBA9C85640A2B579 \(it holds: /,
    )
  })
})

describe('runtime-crio: create --dry-run', () => {
  let work: string
  let root: string
  let home: string
  const definition = (extra = '') =>
    `cluster-name = "crio"\nnodes = 1\ncontainer-runtime = "cri-o"\nkubernetes-version = "v1.20.2"\n${extra}`

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'ks-crio-dry-'))
    root = join(work, 'root')
    home = join(work, 'home')
    await mkdir(root)
    await mkdir(home)
  })
  after(() => rm(work, {recursive: true, force: true}))

  const create = async (toml: string, ...flags: string[]) => {
    const file = join(work, 'kspawn.toml')
    await writeFile(file, toml)
    const before = {root: await snapshotTree(root), home: await snapshotTree(home)}
    // Plugins and caches of this machine's user stay out of it.
    const result = await kubeSpawn(['create', '--config', file, '--dry-run', '--dir', root, ...flags], {
      cwd: work,
      env: {XDG_DATA_HOME: home, XDG_CONFIG_HOME: home, XDG_CACHE_HOME: home},
    })
    assert.deepEqual({root: await snapshotTree(root), home: await snapshotTree(home)}, before, 'a dry run writes nothing')
    return result
  }

  it('refuses Kubernetes 1.20 in one line, with a non-zero exit', async () => {
    const result = await create(definition())
    assert.notEqual(result.code, 0)
    assert.equal(result.stdout, '')
    const lines = result.stderr.trimEnd().split('\n')
    assert.equal(lines.length, 1, result.stderr)
    assert.match(
      lines[0],
      /CRI-O's packages exist for Kubernetes 1\.28 and newer .*not v1\.20\.2; use containerd or docker for older Kubernetes, or set \[plugin-config\.runtime-crio\] repo-url/,
    )
  })

  it('plans the cluster once repo-url names a repository, with the image key of its package set', async () => {
    const settings = `\n[plugin-config.runtime-crio]\nrepo-url = "http://127.0.0.1:9/crio"\nkey-fingerprint = "${'AB'.repeat(20)}"\n`
    const text = await create(definition(settings))
    assert.equal(text.code, 0, text.stderr)
    const key = imageKey(debianOptions({pluginConfig: () => ({})}, crio.packages.debian.names))
    assert.match(text.stdout, /^Plan: create cluster "crio" \(1 nodes, cri-o, debian, v1\.20\.2\):$/m)
    assert.ok(text.stdout.includes(`[kube-spawn] Build the debian base image ${key}`), text.stdout)
    assert.match(text.stdout, /\[kube-spawn\] Install the container runtime’s files and enable its services in each node/)

    const json = await create(definition(settings), '--json')
    assert.equal(json.code, 0, json.stderr)
    const plan = JSON.parse(json.stdout) as {cluster: {containerRuntime: string}; plan: Array<{stage: string; title: string}>}
    assert.equal(plan.cluster.containerRuntime, 'cri-o')
    assert.ok(plan.plan.some((step) => step.stage === 'prepare-image' && step.title.includes(key)))
  })
})
