/**
 * Verified downloads: a file appears under its final name only after its SHA-256 matched. It is written
 * to a temporary file beside the destination, checked, then renamed, so a cache never holds half a file.
 */
import {createHash, randomBytes} from 'node:crypto'
import {open, rename, rm} from 'node:fs/promises'

import {errorMessage, UserError} from '../errors.js'
import {useEnvProxy} from './proxy.js'

export interface DownloadProgress {
  /** What is downloaded, e.g. "kubelet". */
  what: string
  done: number
  total?: number
}

export interface VerifiedDownload {
  url: string
  dest: string
  /** The expected digest (hex), or a function that fetches it once the download may begin. */
  sha256: string | ((signal: AbortSignal) => Promise<string>)
  /** The digest's algorithm; SHA-256 unless said. */
  algorithm?: 'sha256' | 'sha512'
  /** Named in progress and errors. */
  what: string
  /** What to do when the server cannot be reached. */
  hint: string
  mode?: number
  onProgress?: (progress: DownloadProgress) => void
  idleTimeoutMs?: number
}

/** GETs a URL; an unreachable server or an HTTP error is a UserError naming the URL. */
export async function httpGet(url: string, signal: AbortSignal, hint: string): Promise<Response> {
  // Here too, not only at CLI start: kube-spawn used as a library downloads through the proxy as well.
  const proxied = await useEnvProxy()
  let response: Response
  try {
    response = await fetch(url, {signal, redirect: 'follow'})
  } catch (error) {
    const cause = (error as {cause?: unknown}).cause
    throw new UserError(`cannot download ${url}: ${errorMessage(cause ?? error)}`, {
      hint: proxied ? `${hint}; downloads go through the proxy in HTTPS_PROXY or HTTP_PROXY unless NO_PROXY names the host` : hint,
      cause: error,
    })
  }
  if (!response.ok) {
    await response.body?.cancel().catch(() => {})
    throw new UserError(`cannot download ${url}: HTTP ${response.status} ${response.statusText}`.trimEnd(), {
      hint: response.status === 404 ? `no such file; ${hint}` : hint,
    })
  }
  return response
}

/** A watchdog that aborts when no data arrived for `ms`. */
function idleAbort(ms: number): {signal: AbortSignal; touch: () => void; done: () => void} {
  const controller = new AbortController()
  let timer: ReturnType<typeof setTimeout> | undefined
  const touch = () => {
    clearTimeout(timer)
    timer = setTimeout(() => controller.abort(new Error(`no data for ${ms / 1000} s`)), ms)
  }
  touch()
  return {signal: controller.signal, touch, done: () => clearTimeout(timer)}
}

export async function downloadVerified(job: VerifiedDownload): Promise<void> {
  const {url, hint} = job
  const watchdog = idleAbort(job.idleTimeoutMs ?? 60_000)
  const temp = tempPath(job.dest)
  try {
    const expected = typeof job.sha256 === 'string' ? job.sha256 : await job.sha256(watchdog.signal)
    const response = await httpGet(url, watchdog.signal, hint)
    const length = Number(response.headers.get('content-length'))
    const total = Number.isFinite(length) && length > 0 ? length : undefined
    const hash = createHash(job.algorithm ?? 'sha256')
    let done = 0
    let reported = 0
    if (!response.body) throw new UserError(`cannot download ${url}: the server sent no body`, {hint})
    const file = await open(temp, 'wx', job.mode ?? 0o644)
    try {
      try {
        for await (const chunk of response.body) {
          watchdog.touch()
          hash.update(chunk)
          await file.write(chunk)
          done += chunk.byteLength
          if (job.onProgress && Date.now() - reported >= 100) {
            reported = Date.now()
            job.onProgress({what: job.what, done, total})
          }
        }
      } catch (error) {
        const reason = watchdog.signal.aborted ? errorMessage(watchdog.signal.reason) : errorMessage(error)
        throw new UserError(`download of ${url} broke off after ${done} bytes: ${reason}`, {hint, cause: error})
      }
      await file.sync()
    } finally {
      await file.close()
    }
    job.onProgress?.({what: job.what, done, total})
    if (total !== undefined && done !== total) {
      throw new UserError(`download of ${url} is incomplete: ${done} of ${total} bytes`, {hint: 'try again'})
    }
    const actual = hash.digest('hex')
    if (actual !== expected.toLowerCase()) {
      throw new UserError(`checksum mismatch for ${job.what} from ${url}: expected ${expected}, got ${actual}`, {
        hint: `the download is corrupt or was tampered with, and was not kept; try again, or ${hint}`,
      })
    }
    await rename(temp, job.dest)
  } finally {
    watchdog.done()
    await rm(temp, {force: true})
  }
}

export function tempPath(dest: string): string {
  const slash = dest.lastIndexOf('/')
  return `${dest.slice(0, slash)}/.${dest.slice(slash + 1)}.${randomBytes(6).toString('hex')}.tmp`
}
