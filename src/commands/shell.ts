import {Args} from '@oclif/core'

import {BaseCommand} from '../base-command.js'
import {execInteractive, runningNode} from '../node/access.js'

export default class Shell extends BaseCommand<typeof Shell> {
  static summary = 'Open an interactive login shell in a node.'
  static examples = ['<%= config.bin %> shell ks-default-cp']
  static enableJsonFlag = false
  static args = {node: Args.string({required: true, description: 'Machine name (see kube-spawn status).'})}

  async run(): Promise<void> {
    const root = this.env.root
    const pid = await runningNode(root, await root.load(this.clusterName), this.args.node)
    this.exit(await execInteractive(pid, ['/bin/bash', '--login']))
  }
}
