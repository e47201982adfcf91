import {BaseCommand} from '../base-command.js'
import {type ClusterStatus, formatTable, listClusters} from '../cluster/status.js'

export default class List extends BaseCommand<typeof List> {
  static summary = 'List the clusters in the state root.'
  static examples = ['<%= config.bin %> list', '<%= config.bin %> list --json']

  async run(): Promise<ClusterStatus[]> {
    const clusters = await listClusters(this.env.root)
    if (clusters.length === 0) {
      this.log(`No clusters in ${this.flags.dir}.`)
      return clusters
    }
    const rows = clusters.map((c) => [
      c.name,
      String(c.machines.length),
      String(c.machines.filter((m) => m.running).length),
      c.kubernetesVersion,
      c.containerRuntime,
      c.subnet ?? '-',
    ])
    this.log(formatTable(['NAME', 'NODES', 'RUNNING', 'VERSION', 'RUNTIME', 'SUBNET'], rows))
    return clusters
  }
}
