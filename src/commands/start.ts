import {Flags} from '@oclif/core'

import {PipelineCommand} from '../base-command.js'
import {type LifecycleResult, startCluster} from '../cluster/lifecycle.js'
import {dryRunFlag} from '../flags.js'
import {formatPlan} from '../pipeline/runner.js'
import {describeMachines} from '../node/names.js'

export default class Start extends PipelineCommand<typeof Start> {
  static summary = 'Boot the nodes of a created cluster and bring Kubernetes up (or back, after a stop).'
  static description =
    "The first start runs kubeadm init on the control plane and kubeadm join on the workers. Later starts boot the same nodes with the same addresses and data, without running kubeadm again. When a step fails, the nodes' journals, containers, kubeadm output and consoles are saved first and the error names the directory. Ctrl-C (or SIGTERM) stops the running step and powers the nodes off again; a second Ctrl-C exits at once."

  static examples = ['<%= config.bin %> start', '<%= config.bin %> start -c dev --skip-cluster-init']

  static flags = {
    ...dryRunFlag,
    'skip-cluster-init': Flags.boolean({summary: 'Boot the machines only; do not set up Kubernetes.'}),
    retain: Flags.boolean({summary: 'Keep the nodes running when start is interrupted, for debugging.'}),
  }

  async run(): Promise<LifecycleResult> {
    const result = await startCluster(this.env, this.clusterName, {
      dryRun: this.flags['dry-run'],
      skipClusterInit: this.flags['skip-cluster-init'],
      retain: this.flags.retain,
    })
    this.warnAll(result.warnings)
    if (this.flags['dry-run']) this.log(formatPlan(`Plan: start cluster "${this.clusterName}":`, result.plan))
    else this.log(`Cluster "${this.clusterName}" is running (${describeMachines(result.cluster.machines)}).`)
    return result
  }
}
