import {Args} from '@oclif/core'

import {BaseCommand} from '../../base-command.js'
import {type ExportedConfig, exportKubeadmConfig} from '../../cluster/kubeadm-export.js'

export default class ExportKubeadmConfig extends BaseCommand<typeof ExportKubeadmConfig> {
  static summary = 'Write the kubeadm and kubelet configurations a cluster runs into DIR, one directory per node.'
  static description = `Copies out of each node what kubeadm was given and what it wrote for the kubelet: kubeadm-init.yaml (InitConfiguration, ClusterConfiguration, KubeletConfiguration, KubeProxyConfiguration) on the control plane, kubeadm-join.yaml on the workers, and each node's kubelet-config.yaml and kubeadm-flags.env. Replay them with kubeadm on real machines or feed them to Cluster API: docs/kubernetes.md says what to change. The files hold the bootstrap token: they are written mode 0600.`

  static examples = [
    '<%= config.bin %> export kubeadm-config -c dev ./dev-kubeadm',
    'kubeadm init --config ./dev-kubeadm/ks-dev-cp/kubeadm-init.yaml   # on a real machine, after editing the addresses',
  ]

  static args = {dir: Args.directory({description: 'A new or empty directory.', required: true})}

  async run(): Promise<ExportedConfig> {
    const result = await exportKubeadmConfig(this.env, this.clusterName, this.args.dir)
    this.warnAll(result.warnings)
    for (const file of result.files) this.log(file)
    this.log(`Wrote ${result.files.length} file(s) to ${result.path}`)
    return result
  }
}
