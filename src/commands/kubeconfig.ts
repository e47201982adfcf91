import {Flags} from '@oclif/core'

import {BaseCommand} from '../base-command.js'
import {type ClusterKubeconfig, clusterKubeconfig} from '../cluster/kubeconfig.js'

export default class Kubeconfig extends BaseCommand<typeof Kubeconfig> {
  static summary = "Print the path of a cluster's admin kubeconfig, or with --raw the kubeconfig itself."
  static description = `The admin kubeconfig is the admin.conf kubeadm init wrote, kept at <dir>/<cluster>/admin.conf (mode 0600) from the cluster's first start on. Its server is the control plane's address on the cluster bridge, which works from the host and from the nodes alike. start also merges it into your kubeconfig as the context kube-spawn-<cluster>; this command is for tools that want a file of their own.

--internal gives the kubeconfig for use inside the nodes: the server is https://<control plane machine name>:6443, which every node's /etc/hosts resolves and the API server's certificate lists. The path form writes it to <dir>/<cluster>/admin-internal.conf (0600); --raw prints it and writes nothing.

The state root is root's alone: a user who runs kube-spawn through sudo reads the kubeconfig with --raw, e.g. into a file of their own.`

  static examples = [
    {
      description: "Use the cluster's admin kubeconfig with kubectl (as root).",
      command: 'kubectl --kubeconfig "$(<%= config.bin %> kubeconfig)" get nodes',
    },
    {
      description: 'Save the kubeconfig of cluster dev as a file of your own.',
      command: '(umask 077; sudo <%= config.bin %> kubeconfig -c dev --raw > dev.kubeconfig)',
    },
    {
      description: 'Give root in the control plane node the internal kubeconfig, then use kubectl there.',
      command:
        '<%= config.bin %> kubeconfig --internal --raw | <%= config.bin %> exec ks-default-cp -- sh -c "mkdir -p /root/.kube && cat > /root/.kube/config"',
    },
    '<%= config.bin %> exec ks-default-cp -- kubectl get nodes',
    {description: 'The path, server and context as JSON.', command: '<%= config.bin %> kubeconfig --internal --json'},
  ]

  static flags = {
    raw: Flags.boolean({summary: 'Print the kubeconfig (YAML) instead of its path.'}),
    internal: Flags.boolean({summary: 'The kubeconfig for inside the nodes: the server is the control plane by machine name.'}),
  }

  async run(): Promise<ClusterKubeconfig> {
    const result = await clusterKubeconfig(this.env.root, this.clusterName, {internal: this.flags.internal, raw: this.flags.raw})
    this.log(this.flags.raw ? result.kubeconfig!.replace(/\n$/, '') : result.path)
    return result
  }
}
