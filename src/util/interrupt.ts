import {Interrupted} from '../errors.js'

export interface InterruptTrap {
  /** Aborted, with an Interrupted reason, at the first SIGINT or SIGTERM. */
  readonly signal: AbortSignal
  release(): void
}

/**
 * The first SIGINT or SIGTERM aborts the signal: the running task stops and the command tears down
 * what it made. A second one exits at once, for a teardown that hangs.
 */
export function trapInterrupts(say: (line: string) => void = (line) => process.stderr.write(`${line}\n`)): InterruptTrap {
  const controller = new AbortController()
  const handle = (signal: 'SIGINT' | 'SIGTERM') => {
    const reason = new Interrupted(signal)
    if (controller.signal.aborted) {
      say(`kube-spawn: ${signal} again: exiting without cleaning up; "kube-spawn destroy" removes what is left`)
      process.exit(reason.exitCode)
    }
    say(`kube-spawn: ${signal}: stopping the running task and cleaning up (press Ctrl-C again to exit at once)`)
    controller.abort(reason)
  }
  const onInt = () => handle('SIGINT')
  const onTerm = () => handle('SIGTERM')
  process.on('SIGINT', onInt)
  process.on('SIGTERM', onTerm)
  return {
    signal: controller.signal,
    release() {
      process.off('SIGINT', onInt)
      process.off('SIGTERM', onTerm)
    },
  }
}
