import {BaseCommand} from '../base-command.js'
import {type ClusterStatus, clusterStatus, formatTable} from '../cluster/status.js'
import {detectHost} from '../host/detect.js'

export default class Status extends BaseCommand<typeof Status> {
  static summary = "Show a cluster's nodes: role, address and whether they run."
  static examples = ['<%= config.bin %> status', '<%= config.bin %> status -c dev --json']

  async run(): Promise<ClusterStatus & {backend: string}> {
    const root = this.env.root
    const status = await clusterStatus(root, await root.load(this.clusterName))
    const backend = (await detectHost()).machined ? 'machined' : 'standalone'
    this.log(
      `Cluster ${status.name}: ${status.kubernetesVersion}, ${status.containerRuntime} on ${status.image}, bridge ${status.bridge} ${status.subnet ?? ''}, backend ${backend}${status.initialized ? '' : ', Kubernetes not initialized'}`,
    )
    this.log(
      formatTable(
        ['NAME', 'ROLE', 'IP', 'RUNNING'],
        status.machines.map((m) => [m.name, m.role, m.ip, m.running ? 'yes' : 'no']),
      ),
    )
    return {...status, backend}
  }
}
