import pWaitFor from 'p-wait-for'

import {markUserError} from './errors.js'

export interface WaitOptions {
  /** Give up after this many milliseconds. Scale it by the host's timeoutScale where the host's speed matters. */
  timeout: number
  /** Milliseconds between probes. */
  interval: number
  /** What is awaited, for the error: "containerd in ks-dev-cp to answer". */
  describe: string
  /** Ends the wait with the signal's reason (an interrupt). */
  signal?: AbortSignal
}

/** A wait that ran out of time: "timed out after 60 s waiting for containerd in ks-dev-cp to answer" (exit code 1). */
export class WaitTimeout extends Error {
  readonly describe: string
  readonly timeout: number
  /** A wait that ran out is the host's failure, not bad input. */
  readonly exitCode: number = 1

  constructor(describe: string, timeout: number) {
    super(`timed out after ${seconds(timeout)} waiting for ${describe}`)
    this.name = 'WaitTimeout'
    this.describe = describe
    this.timeout = timeout
    markUserError(this, {exitCode: 1})
  }
}

/**
 * Probes `condition` until it returns something other than false or undefined, and returns that. The
 * first probe runs at once; a probe that throws ends the wait with its error. The timeout is checked
 * between probes, so a probe must bound its own run time.
 */
export async function waitFor<T>(
  condition: () => T | false | undefined | Promise<T | false | undefined>,
  {timeout, interval, describe, signal}: WaitOptions,
): Promise<T> {
  let found: T | undefined
  await pWaitFor(
    async () => {
      const value = await condition()
      if (value === false || value === undefined) return false
      found = value
      return true
    },
    {interval, timeout: {milliseconds: timeout, message: new WaitTimeout(describe, timeout)}, signal},
  )
  return found as T
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`
}
