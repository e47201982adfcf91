import {UserError} from '../errors.js'
import type {CoreTask} from '../pipeline/runner.js'
import type {Stage} from '../sdk/index.js'

export const KUBERNETES_STAGES: readonly Stage[] = ['pre-init', 'init', 'post-init', 'join', 'post-join', 'ready']

export function kubernetesStartTasks(): CoreTask[] {
  return [
    {
      stage: 'init',
      title: 'kubeadm init on the control plane',
      task: async () => {
        throw new UserError('Kubernetes bootstrap (kubeadm init/join) is not installed in this build', {
          hint: 'use "kube-spawn start --skip-cluster-init" to boot the nodes only',
        })
      },
    },
  ]
}

export async function removeKubeconfigContext(_cluster: string): Promise<void> {}
