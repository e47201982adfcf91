import {Command, Flags, type Interfaces} from '@oclif/core'

import type {Env, RendererName} from './context/index.js'
import {redactToken} from './config/definition.js'
import {UserError, errorMessage, findUserError} from './errors.js'

import {artifactCacheDir} from './state/cache-env.js'
import {StateRoot} from './state/store.js'
import {type InterruptTrap, trapInterrupts} from './util/interrupt.js'
import {useEnvProxy} from './util/proxy.js'

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof BaseCommand)['baseFlags'] & T['flags']>
export type BaseArgs<T extends typeof Command> = Interfaces.InferredArgs<T['args']>

export const DEFAULT_STATE_ROOT = '/var/lib/kube-spawn'

/** oclif's FlagOutput and ArgOutput (not exported): parsed values by name. */
type ParserRecord = Record<string, unknown>

/**
 * Every kube-spawn command: the global flags, --json, the renderer policy and one-line errors.
 * Subclasses parse nothing themselves; they read this.flags and this.args and call a service.
 */
export abstract class BaseCommand<T extends typeof Command> extends Command {
  static enableJsonFlag = true
  /** Commands that run a building pipeline clean up after Ctrl-C or SIGTERM instead of dying (PipelineCommand). */
  static interruptible = false

  static baseFlags = {
    dir: Flags.directory({
      summary: 'State root that holds every cluster.',
      env: 'KUBE_SPAWN_DIR',
      default: DEFAULT_STATE_ROOT,
      helpGroup: 'GLOBAL',
    }),
    'cluster-name': Flags.string({
      char: 'c',
      summary: 'Cluster to act on [default: default, or cluster-name from --config].',
      helpGroup: 'GLOBAL',
    }),
    verbose: Flags.boolean({summary: 'Print error details and stack traces.', helpGroup: 'GLOBAL'}),
  }

  protected flags!: BaseFlags<T>
  protected args!: BaseArgs<T>
  /** Every positional argument, for commands that take several (static strict = false). */
  protected positionals!: string[]
  private interruptTrap?: InterruptTrap

  async init(): Promise<void> {
    await super.init()
    const {args, flags, raw} = await this.parse({
      flags: this.ctor.flags,
      baseFlags: (this.ctor as typeof BaseCommand).baseFlags,
      enableJsonFlag: this.ctor.enableJsonFlag,
      args: this.ctor.args,
      strict: this.ctor.strict,
    })
    this.flags = flags as BaseFlags<T>
    this.args = args as BaseArgs<T>
    this.positionals = raw.filter((token) => token.type === 'arg').map((token) => token.input)
    if ((this.ctor as typeof BaseCommand).interruptible) this.interruptTrap = trapInterrupts()
    // Once for the whole process, so that plugins' own fetch goes through the proxy too. A bad proxy
    // variable fails only the downloads (httpGet reports it), not commands that download nothing.
    await useEnvProxy().catch(() => {})
  }

  protected async finally(error: Error | undefined): Promise<unknown> {
    this.interruptTrap?.release()
    return super.finally(error)
  }

  private cacheWarned = false

  /** The cluster named by -c, or "default". */
  protected get clusterName(): string {
    return this.flags['cluster-name'] ?? 'default'
  }

  /** Services get the state root, the hooks and the output policy from here. */
  protected get env(): Env {
    const cache = artifactCacheDir()
    if (cache.warning && !this.cacheWarned) {
      this.cacheWarned = true
      this.warnAll([cache.warning])
    }
    return {
      config: this.config,
      root: new StateRoot(this.flags.dir, cache.dir),
      renderer: this.renderer,
      signal: this.interruptTrap?.signal,
    }
  }

  /** Default renderer on a terminal, simple in CI or without one, silent under --json. */
  protected get renderer(): RendererName {
    if (this.jsonEnabled()) return 'silent'
    if (process.env.CI || !process.stdout.isTTY) return 'simple'
    return 'default'
  }

  /**
   * Warnings collected by a pipeline, on stderr so that --json output stays clean. Written directly:
   * oclif's logToStderr prints nothing under --json, and a warning must never vanish.
   */
  protected warnAll(warnings: string[]): void {
    for (const w of warnings) this.stderr(`kube-spawn: warning: ${w}`)
  }

  /** A line on stderr in every mode, --json included. */
  protected stderr(line: string): void {
    process.stderr.write(`${line}\n`)
  }

  /** --json output never carries the secret half of a bootstrap token. */
  protected toSuccessJson(result: unknown): unknown {
    return redactTokens(result)
  }

  /**
   * oclif's parser errors (a bad flag value, an unknown flag, a missing argument) span several lines and
   * print the usage after them: one line instead, naming this command's --help, exit code 2.
   */
  protected async parse<F extends ParserRecord, B extends ParserRecord, A extends ParserRecord>(
    options?: Interfaces.Input<F, B, A>,
    argv?: string[],
  ): Promise<Interfaces.ParserOutput<F, B, A>> {
    try {
      return await super.parse(options, argv)
    } catch (error) {
      const lines = errorMessage(error)
        .split('\n')
        .map((line) => line.trim().replaceAll(/\s+/g, ' ').replace(/\.$/, ''))
        .filter((line) => line !== '' && line !== 'See more help with --help')
      const detail = lines.reduce((joined, line) => (joined === '' ? line : `${joined}${joined.endsWith(':') ? ' ' : ': '}${line}`), '')
      throw new UserError(`${detail}; see kube-spawn ${this.id?.replaceAll(':', ' ') ?? ''} --help`, {exitCode: 2, cause: error})
    }
  }

  protected async catch(error: Interfaces.CommandError): Promise<unknown> {
    const verbose = this.argv.includes('--verbose')
    const user = findUserError(error)
    if (user) {
      if (verbose && user.stack) this.stderr(user.stack)
      if (this.jsonEnabled()) this.logJson({error: {message: user.line, exitCode: user.exitCode}})
      else this.stderr(`kube-spawn: ${user.line}`)
      this.exit(user.exitCode)
    }
    // oclif's own exit keeps its handling; anything else is still one line.
    if (error.oclif || (error as {code?: string}).code === 'EEXIT') return super.catch(error)
    if (verbose && error.stack) this.stderr(error.stack)
    const message = error.message.split('\n')[0]
    if (this.jsonEnabled()) this.logJson({error: {message, exitCode: 1}})
    else this.stderr(`kube-spawn: ${message}${verbose ? '' : ' (--verbose for details)'}`)
    this.exit(1)
  }
}

function redactTokens(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactTokens)
  if (value === null || typeof value !== 'object' || value instanceof Date) return value
  return Object.fromEntries(
    Object.entries(value).map(([key, child]) => [
      key,
      key === 'token' && typeof child === 'string' ? redactToken(child) : redactTokens(child),
    ]),
  )
}

/** A command that runs a building pipeline (create, up, start, image build): Ctrl-C or SIGTERM stops its running step and cleans up. */
export abstract class PipelineCommand<T extends typeof Command> extends BaseCommand<T> {
  static interruptible = true
}
