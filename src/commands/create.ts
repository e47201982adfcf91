import {PipelineCommand} from '../base-command.js'
import {type CreateResult, createCluster} from '../cluster/create.js'
import {definitionFlags, dryRunFlag, createRequestFrom} from '../flags.js'
import {formatPlan} from '../pipeline/runner.js'

export default class Create extends PipelineCommand<typeof Create> {
  static summary = "Write a cluster's environment: check the host, fetch Kubernetes, build the base image, prepare each node's root."
  static description =
    'Reads the definition from --config (TOML, see docs/configuration.md), applies the flag overrides, allocates the cluster\'s subnet and node addresses, and writes <dir>/<cluster>/kspawn.toml. Nothing is booted: run "kube-spawn start" next, or use "kube-spawn up" for both.'

  static examples = [
    '<%= config.bin %> create --nodes 3',
    '<%= config.bin %> create --config kspawn.toml --dry-run',
    '<%= config.bin %> create -c dev --kubernetes-version v1.20.2 --dir /tmp/ks',
  ]

  static flags = {...definitionFlags, ...dryRunFlag}

  async run(): Promise<CreateResult> {
    const result = await createCluster(this.env, createRequestFrom(this.flags))
    this.warnAll(result.warnings)
    const {cluster} = result
    if (this.flags['dry-run']) {
      this.log(
        formatPlan(
          `Plan: create cluster "${cluster.clusterName}" (${cluster.nodes} nodes, ${cluster.containerRuntime}, ${cluster.image}, ${cluster.kubernetesVersion}):`,
          result.plan,
        ),
      )
    } else {
      this.log(
        `Created cluster "${cluster.clusterName}" with ${cluster.nodes} nodes on ${cluster.network.clusterSubnet}. Next: kube-spawn start -c ${cluster.clusterName}`,
      )
    }
    return result
  }
}
