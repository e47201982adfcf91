import {Config, type Interfaces} from '@oclif/core'
import {commands} from '@oclif/plugin-plugins'
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'

import type {UserError} from '../../errors.js'
import {
  DataDirSnapshot,
  type PackageJson,
  asOneLine,
  assertLoaded,
  captureOutput,
  inspectLocalSource,
  manifestRefusal,
  reportPluginCommandFailure,
  who,
} from '../../plugins/install-guard.js'

const PluginsInstall: (typeof commands)['plugins:install'] = commands['plugins:install']

export interface InstalledPlugin {
  name: string
  version?: string
  root: string
}

/**
 * oclif's plugins:install, guarded: a local source is checked before npm runs, npm's output is kept
 * back (--verbose shows it), and the new plugin is loaded and checked afterwards. On any failure the
 * data directory is put back as it was and one line says why.
 */
export default class Install extends PluginsInstall {
  static description = `${PluginsInstall.description}

kube-spawn checks the plugin before and after npm runs: it must have an "oclif" section, a "kube-spawn": {"apiVersion"} range that admits this kube-spawn's plugin API, and hook files that exist and parse. When a check fails, the plugin is removed again and the data directory is left as it was. A local tarball or folder may be given as file:PATH or as a path (absolute, or ./relative to the current directory).`

  static examples = [
    ...PluginsInstall.examples,
    {
      command: '<%= config.bin %> <%= command.id %> ./kube-spawn-plugin-hello-0.1.0.tgz',
      description: 'Install a tarball made by npm pack.',
    },
    {
      command: '<%= config.bin %> <%= command.id %> file:/home/me/kube-spawn-plugin-hello --verbose',
      description: "Install a plugin folder, showing npm's output.",
    },
  ]

  /** Under --json, the installed plugins are printed as JSON (oclif's run() is typed to return nothing). */
  async run(): Promise<void> {
    const {argv, flags} = await this.parse(PluginsInstall)
    const passed = [
      ...(flags.force ? ['--force'] : []),
      ...(flags.jit ? ['--jit'] : []),
      ...(flags.silent ? ['--silent'] : []),
      ...(flags.verbose ? ['--verbose'] : []),
    ]
    const installed: InstalledPlugin[] = []
    for (const input of argv as string[]) {
      const plugin = await this.installOne(input, passed, flags.verbose)
      installed.push(plugin)
      this.log(`Installed ${who(plugin)}`)
    }
    if (this.jsonEnabled()) this.logJson(installed)
  }

  private async installOne(input: string, passed: string[], verbose: boolean): Promise<InstalledPlugin> {
    const local = await inspectLocalSource(input)
    if (local) {
      const refusal = manifestRefusal(local.pjson)
      if (refusal) throw refusal
    }
    const dataDir = this.config.dataDir
    const argv = this.argv
    try {
      return await DataDirSnapshot.around(dataDir, local ? [local.pjson.name] : [registryName(input)], async (snapshot) => {
        const outcome = await captureOutput(verbose, async () => {
          this.argv = [local?.spec ?? input, ...passed]
          await super.run()
          return Config.load(this.config.root)
        })
        const name = local?.pjson.name ?? (await snapshot.changedDependencies())[0] ?? registryName(input)
        if (!outcome.ok) throw (await refusalOf(dataDir, name)) ?? asOneLine(outcome.error, outcome.output, !verbose)
        const plugin = await assertLoaded(outcome.value, name, 'user', {verbose, redo: 'pack it and install it again'})
        return {name: plugin.name, version: plugin.version, root: plugin.root}
      })
    } finally {
      this.argv = argv
    }
  }

  protected async catch(error: Interfaces.CommandError): Promise<unknown> {
    if ((error as {code?: string}).code === 'EEXIT') return super.catch(error)
    this.exit(reportPluginCommandFailure(error, this.argv, this.jsonEnabled() ? (value) => this.logJson(value) : undefined))
  }
}

/** "name" of "name@tag" or "@scope/name@tag"; the input itself for anything else. */
function registryName(input: string): string {
  return input.replace(/(?<!^)@.*$/, '')
}

/** When oclif rejected what npm installed, kube-spawn's own reason, read from the package npm unpacked. */
async function refusalOf(dataDir: string, name: string): Promise<UserError | undefined> {
  const pjson = await readFile(join(dataDir, 'node_modules', name, 'package.json'), 'utf8').then(
    (text) => JSON.parse(text) as PackageJson,
    () => undefined,
  )
  return pjson ? manifestRefusal(pjson) : undefined
}
