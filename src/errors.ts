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

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
