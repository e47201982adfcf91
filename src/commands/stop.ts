import {BaseCommand} from '../base-command.js'
import {type LifecycleResult, stopCluster} from '../cluster/lifecycle.js'
import {dryRunFlag} from '../flags.js'
import {formatPlan} from '../pipeline/runner.js'

export default class Stop extends BaseCommand<typeof Stop> {
  static summary = 'Power the nodes off; their layers, data and Kubernetes state stay for the next start.'
  static examples = ['<%= config.bin %> stop', '<%= config.bin %> stop -c dev']
  static flags = {...dryRunFlag}

  async run(): Promise<LifecycleResult> {
    const result = await stopCluster(this.env, this.clusterName, {dryRun: this.flags['dry-run']})
    this.warnAll(result.warnings)
    if (this.flags['dry-run']) this.log(formatPlan(`Plan: stop cluster "${this.clusterName}":`, result.plan))
    else this.log(`Cluster "${this.clusterName}" is stopped.`)
    return result
  }
}
