/**
 * The pure parts of the workaround-socat plugin: options, ldd parsing, the wrapper, the runtime rule and
 * the decision; plus staging the host's socat, which runs the staged copy through its own loader.
 */
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {existsSync} from 'node:fs'
import {mkdir, mkdtemp, readdir, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, describe, it} from 'node:test'
import {promisify} from 'node:util'

import {
  NODE_LIB_DIR,
  decide,
  decision,
  dpkgVersion,
  parseLdd,
  runtimeNeedsSocat,
  socatOptions,
  stageSocat,
  upstreamRelease,
  wrapperScript,
} from '../../../plugins/workaround-socat/dist/index.js'
import type {ExecResult, NodeHandle, StageContext} from '@kube-spawn/sdk'
import {containerd} from '../../../plugins/runtime-containerd/dist/index.js'

const CONTAINERD_SOCAT = {package: 'containerd', belowVersion: '1.4'}

const exec = promisify(execFile)

/** `ldd /usr/bin/socat` on Debian 12. */
const SOCAT_LDD = `	linux-vdso.so.1 (0x00007f84e3bd7000)
	libwrap.so.0 => /lib/x86_64-linux-gnu/libwrap.so.0 (0x00007f84e3b15000)
	libssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x00007f84e3a6c000)
	libcrypto.so.3 => /lib/x86_64-linux-gnu/libcrypto.so.3 (0x00007f84e3400000)
	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f84e388a000)
	/lib64/ld-linux-x86-64.so.2 (0x00007f84e3bd9000)
	libresolv.so.2 => /lib/x86_64-linux-gnu/libresolv.so.2 (0x00007f84e322f000)
`

describe('socatOptions', () => {
  it('defaults to mode auto and the host socat', () => {
    assert.deepEqual(socatOptions({}), {mode: 'auto', binary: '/usr/bin/socat'})
  })
  it('takes mode and binary from [plugin-config.workaround-socat]', () => {
    assert.deepEqual(socatOptions({mode: 'always', binary: '/opt/socat/bin/socat'}), {mode: 'always', binary: '/opt/socat/bin/socat'})
  })
  it('rejects an unknown mode and a relative binary', () => {
    assert.throws(() => socatOptions({mode: 'sometimes'}), /mode must be one of "auto", "always", "never", not "sometimes"/)
    assert.throws(() => socatOptions({binary: 'socat'}), /binary must be an absolute host path/)
  })
})

describe('parseLdd', () => {
  it('finds the loader and every library, and drops the vDSO', () => {
    const closure = parseLdd(SOCAT_LDD)
    assert.equal(closure.static, false)
    assert.equal(closure.loader, '/lib64/ld-linux-x86-64.so.2')
    assert.deepEqual(
      closure.libraries.map((l) => l.name),
      ['libwrap.so.0', 'libssl.so.3', 'libcrypto.so.3', 'libc.so.6', 'libresolv.so.2'],
    )
    assert.equal(closure.libraries[3].path, '/lib/x86_64-linux-gnu/libc.so.6')
  })
  it('reads a loader printed with an arrow', () => {
    const closure = parseLdd('\tlibc.so.6 => /lib/libc.so.6 (0x1)\n\t/lib/ld-linux-aarch64.so.1 => /usr/lib/ld-linux-aarch64.so.1 (0x2)\n')
    assert.equal(closure.loader, '/usr/lib/ld-linux-aarch64.so.1')
    assert.deepEqual(closure.libraries, [{name: 'libc.so.6', path: '/lib/libc.so.6'}])
  })
  it('knows a static program', () => {
    assert.deepEqual(parseLdd('\tnot a dynamic executable\n'), {static: true, libraries: []})
    assert.equal(parseLdd('\tstatically linked\n').static, true)
  })
  it('fails on a library that ldd cannot find', () => {
    assert.throws(() => parseLdd(`${SOCAT_LDD}\tlibfoo.so.1 => not found\n`), /ldd cannot find libfoo\.so\.1/)
  })
})

describe('wrapperScript', () => {
  it('runs the copy through its own loader with its own libraries', () => {
    const script = wrapperScript(parseLdd(SOCAT_LDD), {argv0: true})
    assert.match(script, /^#!\/bin\/sh\n/)
    assert.ok(script.includes(`dir=${NODE_LIB_DIR}\n`))
    assert.ok(script.endsWith('exec "$dir/lib/ld-linux-x86-64.so.2" --library-path "$dir/lib" --argv0 socat "$dir/socat" "$@"\n'))
  })
  it('leaves out --argv0 where the loader lacks it, and the loader for a static socat', () => {
    assert.ok(!wrapperScript(parseLdd(SOCAT_LDD)).includes('--argv0'))
    assert.ok(wrapperScript({static: true, libraries: []}).endsWith('exec "$dir/socat" "$@"\n'))
  })
})

describe('the runtime rule', () => {
  const STATUS = `Package: containerd
Status: deinstall ok config-files
Version: 1.2.13-1

Package: runc
Status: install ok installed
Version: 1.1.5+ds1-1+deb12u1

Package: containerd
Status: install ok installed
Priority: optional
Version: 1.6.20~ds1-1+deb12u3
`
  it('reads the installed version of a package from dpkg status', () => {
    assert.equal(dpkgVersion(STATUS, 'containerd'), '1.6.20~ds1-1+deb12u3')
    assert.equal(dpkgVersion(STATUS, 'runc'), '1.1.5+ds1-1+deb12u1')
    assert.equal(dpkgVersion(STATUS, 'socat'), undefined)
  })
  it('takes the upstream release from a Debian version', () => {
    assert.deepEqual(upstreamRelease('1.6.20~ds1-1+deb12u3'), {release: '1.6.20', major: 1, minor: 6})
    assert.deepEqual(upstreamRelease('2:1.3-1'), {release: '1.3', major: 1, minor: 3})
    assert.equal(upstreamRelease('git-abc'), undefined)
  })
  it('containerd 1.4 and later forward ports without socat; older ones and unknowns need it', () => {
    assert.deepEqual(containerd.needsSocat, CONTAINERD_SOCAT)
    assert.deepEqual(runtimeNeedsSocat('containerd', CONTAINERD_SOCAT, '1.6.20~ds1-1+deb12u3'), {
      needed: false,
      why: 'containerd 1.6.20 forwards ports itself (without socat since 1.4), so nothing in the node runs socat',
    })
    assert.equal(runtimeNeedsSocat('containerd', CONTAINERD_SOCAT, '1.4.0-1').needed, false)
    assert.equal(runtimeNeedsSocat('containerd', CONTAINERD_SOCAT, '2.0.1').needed, false)
    assert.deepEqual(runtimeNeedsSocat('containerd', CONTAINERD_SOCAT, '1.3.3-1'), {
      needed: true,
      why: 'containerd 1.3.3 runs socat for kubectl port-forward',
    })
    assert.equal(runtimeNeedsSocat('containerd', CONTAINERD_SOCAT, undefined).needed, true)
    assert.equal(runtimeNeedsSocat('docker', true, '20.10.5').needed, true)
  })
})

describe('decide', () => {
  const node = {name: 'ks-x-cp'} as NodeHandle
  const native = {needed: false, why: 'containerd 1.6.20 forwards ports itself'}
  const old = {needed: true, why: 'containerd 1.3.3 runs socat for kubectl port-forward'}
  it('skips when turned off', () => {
    assert.equal(decide({mode: 'never', lacking: [node], need: old}).skip, 'turned off ([plugin-config.workaround-socat] mode = "never")')
  })
  it('skips where the image has socat, whatever the mode', () => {
    for (const mode of ['auto', 'always'] as const) assert.equal(decide({mode, lacking: [], need: old}).skip, 'socat is in the node image')
  })
  it('in auto mode, skips when the runtime does not run socat, and acts when it does', () => {
    assert.equal(decide({mode: 'auto', lacking: [node], need: native}).skip, native.why)
    assert.deepEqual(decide({mode: 'auto', lacking: [node], need: old}), {nodes: [node], skip: false, why: old.why})
  })
  it('in always mode, acts wherever socat is missing', () => {
    assert.deepEqual(decide({mode: 'always', lacking: [node], need: native}), {
      nodes: [node],
      skip: false,
      why: '[plugin-config.workaround-socat] mode = "always"',
    })
  })
})

describe('decision on a fake cluster', () => {
  const temps: string[] = []
  after(async () => {
    for (const dir of temps) await rm(dir, {recursive: true, force: true})
  })

  /** A base image rootfs with the given files, and nodes whose own layers hold `own`. */
  async function cluster({
    base,
    own = {},
    config = {},
  }: {
    base: Record<string, string>
    own?: Record<string, Record<string, string>>
    config?: object
  }) {
    const rootfs = await mkdtemp(join(tmpdir(), 'ks-socat-'))
    temps.push(rootfs)
    for (const [path, content] of Object.entries(base)) {
      await mkdir(join(rootfs, path, '..'), {recursive: true})
      await writeFile(join(rootfs, path), content)
    }
    const nodes = ['cp', 'w1'].map((n) => ({name: `ks-t-${n}`, readFile: async (path: string) => own[n]?.[path]}) as unknown as NodeHandle)
    return {
      nodes,
      runtime: containerd,
      baseImage: {rootfs, key: 'test'},
      pluginConfig: () => config,
    } as unknown as StageContext
  }
  const dpkg = (version: string) => `Package: containerd\nStatus: install ok installed\nVersion: ${version}\n`

  it('skips with "socat is in the node image" where the base image has it', async () => {
    const ctx = await cluster({base: {'usr/bin/socat': 'ELF', 'var/lib/dpkg/status': dpkg('1.3.3-1')}})
    assert.equal((await decision(ctx)).skip, 'socat is in the node image')
  })
  it('skips in auto mode on a no-socat image with containerd 1.6', async () => {
    const ctx = await cluster({base: {'var/lib/dpkg/status': dpkg('1.6.20~ds1-1+deb12u3')}})
    assert.match(String((await decision(ctx)).skip), /^containerd 1\.6\.20 forwards ports itself/)
  })
  it('with an old containerd, acts on the nodes without socat; a node whose own layer has socat is left alone', async () => {
    const ctx = await cluster({base: {'var/lib/dpkg/status': dpkg('1.3.3-1')}, own: {w1: {'/usr/bin/socat': 'ELF'}}})
    const found = await decision(ctx)
    assert.equal(found.skip, false)
    assert.deepEqual(
      found.nodes.map((n) => n.name),
      ['ks-t-cp'],
    )
  })
  it('acts in always mode with containerd 1.6', async () => {
    const ctx = await cluster({base: {'var/lib/dpkg/status': dpkg('1.6.20')}, config: {mode: 'always'}})
    assert.equal((await decision(ctx)).nodes.length, 2)
  })
})

describe('stageSocat', {skip: existsSync('/usr/bin/socat') ? false : 'no /usr/bin/socat on this host'}, () => {
  const temps: string[] = []
  after(async () => {
    for (const dir of temps) await rm(dir, {recursive: true, force: true})
  })
  const ctx = {
    run: async (argv: string[]): Promise<ExecResult> => {
      try {
        const {stdout, stderr} = await exec(argv[0], argv.slice(1))
        return {stdout, stderr, exitCode: 0}
      } catch (error) {
        const e = error as {stdout?: string; stderr?: string; code?: number}
        return {stdout: e.stdout ?? '', stderr: e.stderr ?? '', exitCode: typeof e.code === 'number' ? e.code : 1}
      }
    },
  } as unknown as StageContext

  it('copies socat, its libraries and its loader so that the copy runs on its own', async () => {
    const dir = join(await mkdtemp(join(tmpdir(), 'ks-socat-stage-')), 'bundle')
    temps.push(join(dir, '..'))
    const {closure} = await stageSocat(ctx, '/usr/bin/socat', dir)
    assert.ok(closure.loader)
    const libs = await readdir(join(dir, 'lib'))
    for (const lib of closure.libraries) assert.ok(libs.includes(lib.name), `${lib.name} copied`)
    const loader = join(dir, 'lib', closure.loader.split('/').at(-1)!)
    // An empty environment and only the staged libraries: what the wrapper does in a node.
    const {stdout} = await exec(loader, ['--library-path', join(dir, 'lib'), join(dir, 'socat'), '-V'], {env: {}})
    assert.match(stdout, /socat version/)
  })

  it('says how to get socat when the binary is missing', async () => {
    await assert.rejects(
      stageSocat(ctx, '/nonexistent/socat', join(tmpdir(), 'ks-never')),
      /socat is not on the host at \/nonexistent\/socat: apt-get install socat/,
    )
  })
})
