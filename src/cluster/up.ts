import type {Cluster} from '../config/definition.js'
import type {PlanLine} from '../pipeline/runner.js'
import {type CreateRequest, createCluster} from './create.js'
import type {Env} from './context.js'
import {destroyCluster, planStart, startCluster} from './lifecycle.js'

export interface UpResult {
  cluster: Cluster
  plan: PlanLine[]
  warnings: string[]
}

/** create + start; a failed start destroys the new cluster unless retain is set. */
export async function upCluster(env: Env, request: CreateRequest & {skipClusterInit?: boolean}): Promise<UpResult> {
  const created = await createCluster(env, request)
  const name = created.cluster.clusterName
  if (request.dryRun) {
    const startPlan = await planStart(env, created.cluster, request.skipClusterInit)
    return {cluster: created.cluster, plan: [...created.plan, ...startPlan], warnings: created.warnings}
  }
  try {
    const started = await startCluster(env, name, {skipClusterInit: request.skipClusterInit})
    return {cluster: started.cluster, plan: [], warnings: [...created.warnings, ...started.warnings]}
  } catch (error) {
    if (!request.retain) await destroyCluster(env, name).catch(() => undefined)
    throw error
  }
}
