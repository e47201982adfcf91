import {join} from 'node:path'

import type {Cluster} from '../config/definition.js'
import {errorMessage, withNote} from '../errors.js'
import type {PlanLine} from '../pipeline/runner.js'
import {type CreateRequest, createCluster} from './create.js'
import type {Env} from '../context/index.js'
import {destroyCluster, planStart, startCluster} from './lifecycle.js'

export interface UpResult {
  cluster: Cluster
  plan: PlanLine[]
  warnings: string[]
}

/**
 * create + start. A failed or interrupted start destroys the new cluster unless retain is set; a
 * failure's logs are saved first, outside the cluster directory that the destroy removes.
 */
export async function upCluster(env: Env, request: CreateRequest & {skipClusterInit?: boolean}): Promise<UpResult> {
  const created = await createCluster(env, request)
  const name = created.cluster.clusterName
  if (request.dryRun) {
    const startPlan = await planStart(env, created.cluster, request.skipClusterInit)
    return {cluster: created.cluster, plan: [...created.plan, ...startPlan], warnings: created.warnings}
  }
  const logsParent = request.retain ? undefined : join(env.root.logsDir, name)
  try {
    const started = await startCluster(env, name, {skipClusterInit: request.skipClusterInit, cleanupByCaller: true, logsParent})
    return {cluster: started.cluster, plan: [], warnings: [...created.warnings, ...started.warnings]}
  } catch (error) {
    if (request.retain) throw withNote(error, `the cluster is kept (--retain); remove it with "kube-spawn destroy -c ${name}"`)
    // The teardown must run to its end even though the command's signal has aborted.
    const destroyed = await destroyCluster({...env, signal: undefined}, name).then(
      () => 'the new cluster was removed',
      (failure: unknown) => `removing the new cluster failed too (${errorMessage(failure)}); run "kube-spawn destroy -c ${name}"`,
    )
    throw withNote(error, destroyed)
  }
}
