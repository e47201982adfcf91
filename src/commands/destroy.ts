import {Flags} from '@oclif/core'
import {rm} from 'node:fs/promises'

import {BaseCommand} from '../base-command.js'
import {type LifecycleResult, destroyCluster} from '../cluster/lifecycle.js'
import {dryRunFlag} from '../flags.js'
import {formatPlan} from '../pipeline/runner.js'

export default class Destroy extends BaseCommand<typeof Destroy> {
  static summary = 'Remove every trace of a cluster: nodes, layers, bridge, firewall rules, mounts and its directory.'
  static description = 'The shared cache (base images, Kubernetes downloads) stays for the next cluster unless --purge-cache.'
  static examples = ['<%= config.bin %> destroy', '<%= config.bin %> destroy -c dev --purge-cache']
  static flags = {
    ...dryRunFlag,
    'purge-cache': Flags.boolean({summary: 'Also remove the shared cache of base images and downloads.'}),
  }

  async run(): Promise<LifecycleResult> {
    const result = await destroyCluster(this.env, this.clusterName, {dryRun: this.flags['dry-run']})
    this.warnAll(result.warnings)
    if (this.flags['dry-run']) {
      this.log(formatPlan(`Plan: destroy cluster "${this.clusterName}":`, result.plan))
      return result
    }
    if (this.flags['purge-cache']) await rm(this.env.root.cacheDir, {recursive: true, force: true})
    this.log(`Cluster "${this.clusterName}" is destroyed.`)
    return result
  }
}
