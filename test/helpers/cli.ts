/** The one way tests run programs and the kube-spawn CLI (unit and integration tests alike). */
import {type ChildProcess, spawn} from 'node:child_process'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

export const REPO = fileURLToPath(new URL('../../', import.meta.url))

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
  /** How long the program ran. */
  ms: number
}

export interface RunOptions {
  /** Added to the environment. */
  env?: Record<string, string>
  /** Killed (SIGKILL) after this long; 10 minutes by default. */
  timeoutMs?: number
  /** Written to standard input, which is closed otherwise. */
  input?: string
  cwd?: string
}

/** Runs a program; never rejects on a non-zero exit. `fullEnv` replaces the environment. */
export function runProgram(
  file: string,
  args: string[],
  {
    env = {},
    timeoutMs = 10 * 60_000,
    input,
    fullEnv,
    cwd,
    onStdout,
  }: RunOptions & {fullEnv?: Record<string, string | undefined>; onStdout?: (stdout: string, child: ChildProcess) => void} = {},
): Promise<CliResult> {
  const started = Date.now()
  return new Promise((done, fail) => {
    const child = spawn(file, args, {
      cwd,
      env: fullEnv ?? {...process.env, ...env},
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    const timer = setTimeout(() => {
      stderr += `\n[test] killed after ${timeoutMs} ms`
      child.kill('SIGKILL')
    }, timeoutMs)
    child.stdout!.on('data', (chunk) => {
      stdout += chunk
      onStdout?.(stdout, child)
    })
    child.stderr!.on('data', (chunk) => (stderr += chunk))
    child.on('error', (error) => {
      clearTimeout(timer)
      fail(error)
    })
    child.on('close', (code) => {
      clearTimeout(timer)
      done({code, stdout, stderr, ms: Date.now() - started})
    })
    if (input !== undefined) {
      child.stdin!.on('error', () => undefined)
      child.stdin!.end(input)
    }
  })
}

/** npm settings that only say how to reach the registry; kept so that npm behaves as the user set it up. */
const NPM_NETWORK_SETTINGS = /^npm_config_(registry|proxy|https_proxy|noproxy|cafile|ca|strict_ssl)$/i

/**
 * The caller's environment without anything that steers kube-spawn, oclif or npm (KUBE_SPAWN_*, OCLIF_*,
 * the npm_* of an `npm test` run, the test runner's own), with plain output, plus `extra`.
 */
export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const drop = (key: string) =>
    key.startsWith('KUBE_SPAWN_') ||
    key.startsWith('OCLIF_') ||
    key === 'NODE_TEST_CONTEXT' ||
    (/^npm_/i.test(key) && !NPM_NETWORK_SETTINGS.test(key))
  const kept = Object.entries(process.env).filter((entry): entry is [string, string] => entry[1] !== undefined && !drop(entry[0]))
  return {...Object.fromEntries(kept), NO_COLOR: '1', FORCE_COLOR: '0', ...extra}
}

/** `node bin/run.js ...args` with this test's Node, in a clean environment (cleanEnv) plus `env`. */
export function kubeSpawn(
  args: string[],
  {cwd = REPO, env = {}, timeoutMs, input, onStdout}: RunOptions & {onStdout?: (stdout: string, child: ChildProcess) => void} = {},
): Promise<CliResult> {
  return runProgram(process.execPath, [join(REPO, 'bin', 'run.js'), ...args], {cwd, timeoutMs, input, onStdout, fullEnv: cleanEnv(env)})
}
