import type {KubeSpawnHook} from '@kube-spawn/sdk'

export const providers: KubeSpawnHook<'kube-spawn:providers'> = async () => ({runtimes: []})
