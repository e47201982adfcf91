import {Args} from '@oclif/core'

import {BaseCommand} from '../base-command.js'
import {execInteractive, runningNode} from '../node/access.js'

export default class Exec extends BaseCommand<typeof Exec> {
  static summary = 'Run a command in a node; its exit code becomes kube-spawn’s.'
  static examples = [
    '<%= config.bin %> exec ks-default-cp -- systemctl status kubelet',
    '<%= config.bin %> exec -c dev ks-dev-w1 -- hostname',
  ]
  static strict = false
  static enableJsonFlag = false
  static args = {node: Args.string({required: true, description: 'Machine name (see kube-spawn status).'})}

  async run(): Promise<void> {
    const command = this.argv.slice(this.argv.indexOf('--') + 1)
    if (!this.argv.includes('--') || command.length === 0)
      this.error('give the command after --, e.g. kube-spawn exec NODE -- hostname', {exit: 2})
    const root = this.env.root
    const pid = await runningNode(root, await root.load(this.clusterName), this.args.node)
    this.exit(await execInteractive(pid, command))
  }
}
