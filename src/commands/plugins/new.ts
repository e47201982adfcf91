import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../base-command.js'
import {PLUGIN_KINDS, type ScaffoldResult, nextSteps, scaffoldPlugin} from '../../plugins/scaffold.js'

export default class PluginsNew extends BaseCommand<typeof PluginsNew> {
  static summary = 'Create a plugin project: a workaround, a container runtime or a base image, ready to build, test and pack.'
  static description =
    'Writes the project kube-spawn-plugin-NAME: package.json, TypeScript sources and unit tests that pass as generated. ' +
    'Nothing is installed; the next steps are printed.'

  static examples = [
    '<%= config.bin %> plugins:new hello --kind workaround',
    '<%= config.bin %> plugins:new crun --kind runtime --dir ~/src/kube-spawn-plugin-crun',
  ]

  static args = {name: Args.string({description: 'The short name: lower-case letters, digits and hyphens.', required: true})}

  // No state root and no cluster here, so not the global --dir and --cluster-name: --dir is where the project goes.
  // (The cast keeps the static side assignable to BaseCommand's; flags.dir below replaces the global one's type.)
  static baseFlags = {verbose: BaseCommand.baseFlags.verbose} as unknown as typeof BaseCommand.baseFlags

  static flags = {
    kind: Flags.string({
      summary: `What the plugin provides: ${PLUGIN_KINDS.join(', ')}.`,
      helpValue: PLUGIN_KINDS.join('|'),
      required: true,
    }),
    dir: Flags.string({summary: 'Where to write the project [default: ./kube-spawn-plugin-NAME]; it must not exist, or be empty.'}),
  }

  async run(): Promise<ScaffoldResult> {
    const dir: string | undefined = this.flags.dir
    const result = await scaffoldPlugin({name: this.args.name, kind: this.flags.kind, dir})
    this.log(`Created ${result.packageName} (${result.kind}) in ${result.dir}:`)
    for (const file of result.files) this.log(`  ${file}`)
    this.log('\nNext steps:')
    for (const step of nextSteps(result, this.config.bin)) this.log(`  ${step}`)
    return result
  }
}
