import {Config, type Interfaces} from '@oclif/core'
import {commands} from '@oclif/plugin-plugins'

import {
  DataDirSnapshot,
  asOneLine,
  assertLoaded,
  captureOutput,
  inspectPluginFolder,
  manifestRefusal,
  reportPluginCommandFailure,
  who,
} from '../../plugins/install-guard.js'

const PluginsLink: (typeof commands)['plugins:link'] = commands['plugins:link']

/**
 * oclif's plugins:link, guarded: the folder is checked before it is linked, oclif's output is kept
 * back (--verbose shows it), and the linked plugin is loaded and checked; on any failure it is
 * unlinked again and one line says why.
 */
export default class Link extends PluginsLink {
  static description = `${PluginsLink.description}
kube-spawn checks the plugin before and after linking it: it must have an "oclif" section, a "kube-spawn": {"apiVersion"} range that admits this kube-spawn's plugin API, and hook files that exist and parse (build it first). When a check fails, the plugin is not left linked.`

  static examples = [...PluginsLink.examples, '<%= config.bin %> <%= command.id %> . --no-install']

  async run(): Promise<void> {
    const {args, flags} = await this.parse(PluginsLink)
    const folder = await inspectPluginFolder(args.path)
    const refusal = manifestRefusal(folder.pjson)
    if (refusal) throw refusal
    const name = folder.pjson.name
    const argv = this.argv
    try {
      await DataDirSnapshot.around(this.config.dataDir, [name], async () => {
        const outcome = await captureOutput(flags.verbose, async () => {
          this.argv = [folder.path, flags.install ? '--install' : '--no-install', ...(flags.verbose ? ['--verbose'] : [])]
          await super.run()
          return Config.load(this.config.root)
        })
        if (!outcome.ok) throw asOneLine(outcome.error, outcome.output, !flags.verbose)
        const plugin = await assertLoaded(outcome.value, name, 'link', {verbose: flags.verbose, redo: 'link it again'})
        this.log(`Linked ${who(plugin)} from ${plugin.root}`)
      })
    } finally {
      this.argv = argv
    }
  }

  protected async catch(error: Interfaces.CommandError): Promise<unknown> {
    if ((error as {code?: string}).code === 'EEXIT') return super.catch(error)
    this.exit(reportPluginCommandFailure(error, this.argv))
  }
}
