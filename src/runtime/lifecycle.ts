/** The runtime while nodes run: the host waits for it after boot and stops it in order at stop. */
import type {ClusterContext, HostNode, HostStep} from '../context/index.js'
import {WaitTimeout} from '../util/wait.js'

const isRunning = (node: HostNode) =>
  node.exec(['true'], {allowFailure: true}).then(
    (r) => r.exitCode === 0,
    () => false,
  )

/** Until the runtime's readiness command succeeds in the node (its last output line in the timeout's message). */
export async function waitForRuntimeIn(ctx: ClusterContext, node: HostNode): Promise<void> {
  const {runtime} = ctx
  let last = ''
  try {
    await ctx.waitFor(
      async () => {
        const result = await node.exec(runtime.readinessCommand, {allowFailure: true, timeoutMs: 10_000})
        last = (result.stderr || result.stdout).trim().split('\n').at(-1) ?? ''
        return result.exitCode === 0 ? true : undefined
      },
      {timeout: 60_000 * ctx.host.timeoutScale, interval: 200, describe: `${runtime.name} in ${node.name} to answer`},
    )
  } catch (error) {
    throw last && error instanceof WaitTimeout ? new WaitTimeout(`${error.describe} (${last})`, error.timeout) : error
  }
}

/** post-boot: the runtime's readiness command succeeds in every node. */
export const waitForRuntime: HostStep = {
  title: 'Wait until the container runtime answers in every node',
  task: async (ctx, task) => {
    await Promise.all(ctx.nodes.map((node) => waitForRuntimeIn(ctx, node)))
    task.title = `${ctx.runtime.name} answers in every node`
  },
}

/** stop: after the kubelet, kill the containers, then stop the runtime's services (the main one last). */
export const stopRuntime: HostStep = {
  title: 'Kill the containers and stop the container runtime',
  skip: (ctx) => (ctx.runtime.services.length === 0 ? `the runtime plugin (${ctx.providerPlugins.runtime}) is not installed` : false),
  task: async (ctx) => {
    const {runtime} = ctx
    await Promise.all(
      ctx.nodes.map(async (node) => {
        if (!(await isRunning(node))) return
        if (runtime.stopContainersCommand) await node.exec(runtime.stopContainersCommand, {allowFailure: true, timeoutMs: 30_000})
        await node.exec(['systemctl', 'stop', ...[...runtime.services].reverse()], {allowFailure: true, timeoutMs: 30_000})
      }),
    )
  },
}
