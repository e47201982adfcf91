import {isUserError} from '@kube-spawn/sdk'

/**
 * An error caused by the user's input or environment. Its message is one line that says what is
 * wrong and, in `hint`, what to do. The base command prints it without a stack trace.
 */
export class UserError extends Error {
  readonly hint?: string
  readonly exitCode: number

  constructor(message: string, options: {hint?: string; exitCode?: number; cause?: unknown} = {}) {
    super(message, {cause: options.cause})
    this.name = 'UserError'
    this.hint = options.hint
    this.exitCode = options.exitCode ?? 2
  }

  /** The single line a user sees. */
  get line(): string {
    return this.hint ? `${this.message}: ${this.hint}` : this.message
  }
}

/**
 * Something on the host failed rather than the input: a command (iptables, kubeadm, nspawn) exited
 * non-zero, a node did not boot or become Ready. Exit code 1; bad input keeps UserError's 2.
 */
export class HostError extends UserError {
  constructor(message: string, options: {hint?: string; cause?: unknown} = {}) {
    super(message, {...options, exitCode: 1})
    this.name = 'HostError'
  }
}

/** The command was interrupted by a signal; the exit code is the shell's 128 + signal number. */
export class Interrupted extends UserError {
  constructor(readonly signal: 'SIGINT' | 'SIGTERM') {
    super(`interrupted by ${signal}`, {exitCode: signal === 'SIGINT' ? 130 : 143})
    this.name = 'Interrupted'
  }
}

/**
 * The interrupt behind a failure, if any. On a terminal, Ctrl-C reaches the commands kube-spawn runs
 * too, and one may fail from it before the abort is seen: an aborted signal wins over that error.
 */
export function interruptOf(error: unknown, signal: AbortSignal | undefined): Interrupted | undefined {
  if (signal?.aborted && signal.reason instanceof Interrupted) return signal.reason
  return error instanceof Interrupted ? error : undefined
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/**
 * Listr and oclif wrap errors; the UserError may be a cause further down. An error a plugin made with
 * the SDK's userError() counts as one too.
 */
export function findUserError(error: unknown): UserError | undefined {
  for (let e = error as {cause?: unknown} | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (e instanceof UserError) return e
    if (isUserError(e)) return new UserError(e.message, {hint: e.hint, exitCode: e.exitCode, cause: e})
  }
  return undefined
}

/** The failure as the user sees it, with a note added to its hint (e.g. where its logs were saved). */
export function withNote(error: unknown, note: string): UserError {
  const user = findUserError(error)
  const message = user?.message ?? errorMessage(error).split('\n')[0]
  return new UserError(message, {hint: user?.hint ? `${user.hint}; ${note}` : note, exitCode: user?.exitCode ?? 1, cause: error})
}
