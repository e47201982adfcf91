import {Args} from '@oclif/core'

import {BaseCommand} from '../../base-command.js'
import {exportLogs} from '../../cluster/lifecycle.js'

export default class ExportLogs extends BaseCommand<typeof ExportLogs> {
  static summary =
    "Save a cluster's logs: each node's kubelet and runtime journals, failed units, containers, pod logs, kubeadm output and console."
  static description =
    "The same evidence a failed start saves by itself. Running nodes are asked directly; a stopped node's journals are read from its layer. Prints the directory."

  static examples = [
    '<%= config.bin %> export logs',
    '<%= config.bin %> export logs -c dev /tmp/dev-logs',
    'tar czf logs.tgz -C "$(<%= config.bin %> export logs)" .',
  ]

  static args = {dir: Args.directory({description: 'Where to save them [default: <dir>/<cluster>/logs/<timestamp>].'})}

  async run(): Promise<{path: string}> {
    const {path, warnings} = await exportLogs(this.env, this.clusterName, this.args.dir)
    this.warnAll(warnings)
    this.log(path)
    return {path}
  }
}
