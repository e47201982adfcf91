/**
 * Errors the user caused or can fix. The host prints them as one line ("what is wrong: what to do")
 * without a stack trace. They carry a brand instead of a class, so that an error made by any copy of
 * this package is recognised by the host.
 */
const USER_ERROR = Symbol.for('kube-spawn.user-error')

export interface UserErrorFields {
  /** What to do about it. */
  hint?: string
  /** The process's exit code: 2 for bad input (the default), 1 for a failure on the host. */
  exitCode?: number
  cause?: unknown
}

export type KubeSpawnUserError = Error & {hint?: string; exitCode: number}

/** An error whose message is one line the user sees as is. */
export function userError(message: string, fields: UserErrorFields = {}): KubeSpawnUserError {
  return markUserError(new Error(message, {cause: fields.cause}), fields)
}

/** Brands an existing error (of any class) as a user error. */
export function markUserError<E extends Error>(error: E, {hint, exitCode = 2}: UserErrorFields = {}): E & KubeSpawnUserError {
  return Object.assign(error, {[USER_ERROR]: true, hint, exitCode})
}

export function isUserError(error: unknown): error is KubeSpawnUserError {
  return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[USER_ERROR] === true
}
