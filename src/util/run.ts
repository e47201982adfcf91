import {execa} from 'execa'
import {writeFile} from 'node:fs/promises'

import {HostError} from '../errors.js'
import type {ExecResult, RunOptions} from '@kube-spawn/sdk'

export interface HostRunOptions extends RunOptions {
  env?: Record<string, string>
  /** Also keep the command's combined output in this host file, written whether it fails or not. */
  logFile?: string
  /** How errors name the command, when argv[0] is only a wrapper (nsenter for a command in a node). */
  shownAs?: {name: string; argv: string[]}
}

/**
 * Runs a command on the host. Output goes to the task's output line when one is given. A failure is
 * an error naming the command and the last lines it printed, unless allowFailure is set. When the
 * signal aborts (an interrupt), the command is killed and the signal's reason is thrown, even with
 * allowFailure, so that no wait loop mistakes an interrupt for a failed probe.
 */
export async function run(argv: string[], options: HostRunOptions = {}): Promise<ExecResult> {
  const [file, ...args] = argv
  options.signal?.throwIfAborted()
  const child = execa(file, args, {
    reject: false,
    input: options.input,
    timeout: options.timeoutMs,
    env: options.env,
    all: true,
    stdin: options.input === undefined ? 'ignore' : undefined,
    cancelSignal: options.signal,
  })
  if (options.task) {
    const task = options.task
    // The task's output line shows the command's latest line of output.
    child.all?.on('data', (chunk: Buffer) => {
      const line = String(chunk).trimEnd().split('\n').at(-1)
      if (line) task.output = line
    })
  }
  const result = await child
  if (options.logFile) await writeFile(options.logFile, `$ ${argv.join(' ')}\n${String(result.all ?? '')}\n`, {mode: 0o600})
  options.signal?.throwIfAborted()
  const exitCode = result.exitCode ?? (result.timedOut ? 124 : 1)
  const outcome = {stdout: String(result.stdout ?? ''), stderr: String(result.stderr ?? ''), exitCode}
  if (exitCode !== 0 && !options.allowFailure) {
    const tail = (outcome.stderr || outcome.stdout).trim().split('\n').slice(-3).join(' | ')
    const why = result.timedOut
      ? `timed out after ${options.timeoutMs} ms`
      : result.failed && result.exitCode === undefined
        ? String(result.shortMessage)
        : `exited with ${exitCode}`
    const shown = options.shownAs ?? {name: file, argv}
    throw new HostError(`${shown.name} ${why}${tail ? `: ${tail}` : ''}`, {hint: `command: ${shown.argv.join(' ')}`})
  }
  return outcome
}
