/**
 * runtime-crio: its config files as golden files (UPDATE_GOLDEN=1 rewrites them), its apt source per
 * Kubernetes version and settings, its refusal, and its image import script (run with a stand-in skopeo).
 */
import assert from 'node:assert/strict'
import {golden as goldenFile, testHost} from '../helpers/golden.ts'
import {spawnSync} from 'node:child_process'
import {chmod, mkdir, mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'
import {after, before, describe, it} from 'node:test'
import {fileURLToPath} from 'node:url'

import {type CgroupDriver, type RuntimeQuery, answerProblems, isUserError} from '@kube-spawn/sdk'
import {
  CRIO_LOAD,
  OBS_KEY_FINGERPRINT,
  crio,
  crioConfig,
  crioRepo,
  crioSettings,
  providers,
  storageConfig,
} from '../../../plugins/runtime-crio/dist/index.js'

const GOLDEN = join(dirname(fileURLToPath(import.meta.url)), 'golden')
const golden = (file: string, actual: string) => goldenFile(join(GOLDEN, file), actual)

const fileCtx = (cgroupDriver: CgroupDriver) => ({
  kubernetes: {version: 'v1.28.0', sandboxImage: 'registry.k8s.io/pause:3.9', cgroupDriver},
  cni: {confDir: '/etc/cni/net.d', binDir: '/usr/lib/cni'},
})

function query(kubernetesVersion: string, config: Record<string, unknown> = {}): RuntimeQuery {
  return {
    kubernetesVersion,
    kubernetesSource: 'https://dl.k8s.io',
    image: 'debian',
    family: 'debian',
    cgroupDriver: 'systemd',
    host: testHost(),
    pluginConfig: (name) => (name === 'runtime-crio' ? config : {}),
  }
}

describe('runtime-crio config files (golden)', () => {
  for (const driver of ['systemd', 'cgroupfs'] as const) {
    it(`renders the CRI-O drop-in for the ${driver} driver`, async () => {
      await golden(`20-kube-spawn.${driver}.conf`, crioConfig(fileCtx(driver)))
    })
    it(`renders storage.conf for the ${driver} driver`, async () => {
      await golden(`storage.${driver}.conf`, storageConfig(fileCtx(driver)))
    })
  }

  it('gives CRI-O and skopeo the same store, and conmon the cgroup each driver allows', () => {
    const store = (text: string, key: string) => new RegExp(`^${key} = "(.*)"$`, 'm').exec(text)?.[1]
    const drop = crioConfig(fileCtx('cgroupfs'))
    const storage = storageConfig()
    assert.equal(store(drop, 'root'), store(storage, 'graphroot'))
    assert.equal(store(drop, 'runroot'), store(storage, 'runroot'))
    assert.equal(store(drop, 'storage_driver'), store(storage, 'driver'))
    assert.equal(drop.match(/^monitor_cgroup = "pod"$/gm)?.length, 2)
    assert.equal(crioConfig(fileCtx('systemd')).match(/^monitor_cgroup = "system\.slice"$/gm)?.length, 2)
  })

  it('puts the files where the host writes them, the import script executable', () => {
    const files = crio.files ?? []
    assert.deepEqual(
      files.map((f) => [f.path, f.mode]),
      [
        ['/etc/crio/crio.conf.d/20-kube-spawn.conf', undefined],
        ['/etc/containers/storage.conf', undefined],
        ['/usr/local/libexec/kube-spawn/crio-load', 0o755],
        ['/etc/containers/registries.conf.d/50-kube-spawn-registry.conf', undefined],
      ],
    )
    assert.deepEqual(crio.imageImportCommand, ['/usr/local/libexec/kube-spawn/crio-load'])
  })
})

describe('runtime-crio apt source', () => {
  it('follows the Kubernetes minor to its CRI-O stream, with the OBS key by fingerprint', () => {
    for (const [version, minor] of [
      ['v1.28.0', 28],
      ['v1.31.4', 31],
      ['1.33.1', 33],
    ] as const) {
      const repo = `https://download.opensuse.org/repositories/isv:/cri-o:/stable:/v1.${minor}/deb`
      assert.deepEqual(crioRepo(version), {
        name: 'cri-o',
        entry: `${repo}/ /`,
        key: {url: `${repo}/Release.key`, fingerprint: OBS_KEY_FINGERPRINT},
      })
    }
    assert.match(OBS_KEY_FINGERPRINT, /^[0-9A-F]{40}$/)
  })

  it('takes a mirror or own builds from [plugin-config.runtime-crio]', () => {
    const settings = crioSettings(query('v1.20.2', {'repo-url': 'http://127.0.0.1:8080/crio/', 'key-fingerprint': 'ab'.repeat(20)}))
    assert.deepEqual(crioRepo('v1.20.2', settings), {
      name: 'cri-o',
      entry: 'http://127.0.0.1:8080/crio/ /',
      key: {url: 'http://127.0.0.1:8080/crio/Release.key', fingerprint: 'AB'.repeat(20)},
    })
    const keyed = crioSettings(query('v1.30.0', {'key-url': 'https://keys.example.org/crio.asc'}))
    assert.deepEqual(crioRepo('v1.30.0', keyed).key, {url: 'https://keys.example.org/crio.asc', fingerprint: OBS_KEY_FINGERPRINT})
  })

  it('refuses malformed settings in one line that names the key', () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{'repo-url': 'ftp://x'}, /^\[plugin-config\.runtime-crio\] repo-url must be an http\(s\) URL, not "ftp:\/\/x"$/],
      [{'key-fingerprint': 'DEADBEEF'}, /^\[plugin-config\.runtime-crio\] key-fingerprint must be the key's 40 hex digits/],
      [{'repo-url': 3}, /^\[plugin-config\.runtime-crio\] repo-url must be a string, not 3$/],
      [{repo_url: 'http://x'}, /^\[plugin-config\.runtime-crio\] has no key "repo_url" \(it knows: repo-url, key-url, key-fingerprint\)$/],
    ]
    for (const [config, message] of cases)
      assert.throws(
        () => crio.variant!(query('v1.28.0', config)),
        (error: unknown) => isUserError(error) && message.test((error as Error).message),
      )
  })

  it("gives the stream's apt source through variant(), the same package names as the declaration", () => {
    const variant = crio.variant!(query('v1.29.2'))
    assert.deepEqual(variant.packages, {
      debian: {names: crio.packages.debian.names, aptSources: [crioRepo('v1.29.2')]},
    })
    assert.deepEqual(crio.packages.debian.names, ['cri-o', 'containernetworking-plugins', 'skopeo'])
  })
})

describe('runtime-crio refusal', () => {
  it('refuses Kubernetes below 1.28 in one line naming what it supports', () => {
    const refusal = crio.refuse!(query('v1.20.2'))
    assert.equal(
      refusal,
      "CRI-O's packages exist for Kubernetes 1.28 and newer (the v1.28 and later streams of isv:cri-o:stable on download.opensuse.org), not v1.20.2; use containerd or docker for older Kubernetes, or set [plugin-config.runtime-crio] repo-url to a repository of your own builds",
    )
    assert.ok(!refusal.includes('\n'))
    assert.match(crio.refuse!(query('v1.27.9')) ?? '', /not v1\.27\.9;/)
  })

  it('accepts 1.28 and newer, and any version with a repo-url of its own', () => {
    for (const version of ['v1.28.0', 'v1.31.0', 'v1.37.1']) assert.equal(crio.refuse!(query(version)), undefined)
    assert.equal(crio.refuse!(query('v1.20.2', {'repo-url': 'http://127.0.0.1:1/'})), undefined)
  })

  it('supports Debian images only', () => {
    assert.deepEqual(crio.supports, {images: ['debian']})
    assert.deepEqual(Object.keys(crio.packages), ['debian'])
  })
})

describe('runtime-crio provider', () => {
  it('answers the providers hook with a runtime the SDK finds no problem in', async () => {
    const answer = await providers({})
    assert.deepEqual(answerProblems('kube-spawn:providers', answer), [])
    assert.deepEqual(
      answer.runtimes?.map((r) => r.name),
      ['cri-o'],
    )
    const merged = {...crio, ...crio.variant!(query('v1.28.0'))}
    assert.deepEqual(answerProblems('kube-spawn:providers', {runtimes: [merged]}), [])
  })

  it('runs, waits for and stops CRI-O over its socket, without socat', () => {
    assert.equal(crio.criSocket, 'unix:///var/run/crio/crio.sock')
    assert.deepEqual(crio.readinessCommand, ['crio', 'status', '--socket', '/var/run/crio/crio.sock', 'info'])
    assert.deepEqual(crio.services, ['crio.service'])
    assert.equal(crio.needsSocat, false)
    const stop = crio.stopContainersCommand ?? []
    assert.equal(stop[0], 'sh')
    assert.equal(spawnSync('sh', ['-n', '-c', stop[2]]).status, 0, 'the stop command is valid sh')
  })
})

describe('crio-load', () => {
  let dir: string
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ks-crio-load-'))
    await mkdir(join(dir, 'bin'))
    // A stand-in skopeo that prints what it was asked to do.
    await writeFile(join(dir, 'bin', 'skopeo'), '#!/bin/sh\necho "skopeo $*"\n', {mode: 0o755})
    await writeFile(join(dir, 'crio-load'), CRIO_LOAD)
    await chmod(join(dir, 'crio-load'), 0o755)
  })
  after(() => rm(dir, {recursive: true, force: true}))

  /** An archive as docker save makes it (members without "./"), or as `tar -C dir .` does. */
  async function archive(name: string, manifest: string | undefined, dotSlash = false): Promise<string> {
    const content = join(dir, `${name}.d`)
    await mkdir(content)
    const member = manifest === undefined ? 'index.json' : 'manifest.json'
    await writeFile(join(content, member), manifest ?? '{}')
    const path = join(dir, `${name}.tar`)
    assert.equal(spawnSync('tar', ['-cf', path, '-C', content, dotSlash ? `./${member}` : member]).status, 0)
    return path
  }
  const load = (path: string) =>
    spawnSync('dash', [join(dir, 'crio-load'), path], {encoding: 'utf8', env: {...process.env, PATH: `${join(dir, 'bin')}:/usr/bin:/bin`}})

  it('is POSIX sh', () => {
    assert.equal(spawnSync('dash', ['-n', join(dir, 'crio-load')]).status, 0)
    assert.ok(!/\bjq\b/.test(CRIO_LOAD.replace(/^#.*$/gm, '')))
  })

  it('copies every tag of every image into containers-storage', async () => {
    const path = await archive(
      'tagged',
      '[{"Config":"a.json","RepoTags":["registry.k8s.io/pause:3.9","registry.k8s.io/pause:latest"],"Layers":["l/layer.tar"]},\n' +
        ' {"Config":"b.json", "RepoTags" : [ "registry.k8s.io/kube-apiserver:v1.28.0" ], "Layers":[]}]\n',
    )
    const result = load(path)
    assert.equal(result.status, 0, result.stderr)
    assert.deepEqual(
      result.stdout.trim().split('\n'),
      ['registry.k8s.io/pause:3.9', 'registry.k8s.io/pause:latest', 'registry.k8s.io/kube-apiserver:v1.28.0'].map(
        (tag) => `skopeo --insecure-policy copy --quiet docker-archive:${path}:${tag} containers-storage:${tag}`,
      ),
    )
  })

  it('reads ./manifest.json too', async () => {
    const result = load(await archive('dotted', '[{"Config":"a.json","RepoTags":["registry.k8s.io/pause:3.9"],"Layers":[]}]', true))
    assert.equal(result.status, 0, result.stderr)
    assert.match(
      result.stdout,
      /^skopeo --insecure-policy copy --quiet docker-archive:\S+:registry\.k8s\.io\/pause:3\.9 containers-storage:registry\.k8s\.io\/pause:3\.9\n$/,
    )
  })

  it('fails clearly for an untagged image, and for an archive without manifest.json', async () => {
    const untagged = load(await archive('untagged', '[{"Config":"c.json","RepoTags":null,"Layers":[]}]'))
    assert.equal(untagged.status, 1)
    assert.equal(untagged.stdout, '')
    assert.match(untagged.stderr, /crio-load: .*untagged\.tar holds no tagged image \(manifest\.json has no RepoTags\)/)
    const oci = load(await archive('oci', undefined))
    assert.equal(oci.status, 1)
    assert.equal(oci.stderr, `crio-load: ${join(dir, 'oci.tar')} has no manifest.json: it is not a docker-archive (docker save) file\n`)
    const missing = load(join(dir, 'missing.tar'))
    assert.equal(missing.status, 1)
    assert.equal(missing.stderr, `crio-load: cannot read ${join(dir, 'missing.tar')}\n`)
  })
})
