import {Flags} from '@oclif/core'

import {PipelineCommand} from '../base-command.js'
import {type UpResult, upCluster} from '../cluster/up.js'
import {definitionFlags, dryRunFlag, createRequestFrom} from '../flags.js'
import {formatPlan} from '../pipeline/runner.js'
import {describeMachines} from '../node/names.js'

export default class Up extends PipelineCommand<typeof Up> {
  static summary = 'Create and start a cluster in one step.'
  static description =
    "A failed up saves the nodes' logs under <dir>/logs/<cluster>/<timestamp> (the error names the directory), then removes what it made, unless --retain. Ctrl-C (or SIGTERM) stops the running step and removes what up made; a second Ctrl-C exits at once."
  static examples = ['<%= config.bin %> up --nodes 3', '<%= config.bin %> up --config kspawn.toml', '<%= config.bin %> up --dry-run']
  static flags = {
    ...definitionFlags,
    ...dryRunFlag,
    'skip-cluster-init': Flags.boolean({summary: 'Boot the machines only; do not set up Kubernetes.'}),
  }

  async run(): Promise<UpResult> {
    const result = await upCluster(this.env, {...createRequestFrom(this.flags), skipClusterInit: this.flags['skip-cluster-init']})
    const name = result.cluster.clusterName
    this.warnAll(result.warnings)
    if (this.flags['dry-run']) this.log(formatPlan(`Plan: up cluster "${name}":`, result.plan))
    else this.log(`Cluster "${name}" is up with ${describeMachines(result.cluster.machines)}.`)
    return result
  }
}
