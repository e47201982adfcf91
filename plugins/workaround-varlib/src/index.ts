import {mkdir} from 'node:fs/promises'
import {join} from 'node:path'

import type {KubeSpawnHook, StageTask} from '@kube-spawn/sdk'

/**
 * overlayfs refuses an upper dir that is itself on overlayfs, so the runtime's overlay snapshotter
 * cannot work inside a node whose root is an overlay. Bind-mounting the runtime's data dirs (its
 * declared dataDirs) and
 * /var/lib/kubelet from the host fixes that, keeps node roots small, and keeps the data across restarts.
 */
export const KUBELET_DIR = '/var/lib/kubelet'

/** The host directory behind a node path: <node dir>/var-lib/<last component>. */
export function hostDirFor(nodeDir: string, nodePath: string): string {
  return join(nodeDir, 'var-lib', nodePath.replace(/^\/var\/lib\//, '').replaceAll('/', '-'))
}

export const providers: KubeSpawnHook<'kube-spawn:providers'> = async () => ({
  workarounds: [
    {
      name: 'varlib',
      description: 'Bind-mount the runtime data dirs and /var/lib/kubelet from the host (overlay roots cannot host overlay snapshots)',
    },
  ],
})

/** pre-boot: the mounts are added before the nodes boot; later boots add them again. */
const mountTask: StageTask = {
  title: 'Bind-mount the runtime data dir and /var/lib/kubelet from the host',
  task: async (ctx, task) => {
    const paths = [...new Set([...ctx.runtime.dataDirs, KUBELET_DIR])]
    for (const node of ctx.nodes) {
      for (const dst of paths) {
        const src = hostDirFor(node.dir, dst)
        await mkdir(src, {recursive: true, mode: 0o700})
        node.addBindMount({src, dst})
      }
    }
    task.title = `Bind-mount ${paths.join(' and ')} from the host`
  },
}

export const tasks: KubeSpawnHook<'kube-spawn:tasks'> = async ({stage}) => (stage === 'pre-boot' ? [mountTask] : [])
