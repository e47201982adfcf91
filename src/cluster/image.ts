import type {DefinitionOverrides} from '../config/definition.js'
import {UserError} from '../errors.js'
import {loadCatalog, selectProvider} from '../plugins/providers.js'
import type {StageContext} from '@kube-spawn/sdk'
import type {Env} from '../context/index.js'
import {phaseStages} from '../pipeline/pipelines.js'
import {baseImageKey} from '../image/prepare.js'
import {buildContext, runStages} from './context.js'
import {readDefinition} from './create.js'

export interface BuiltImage {
  image: string
  baseImage: NonNullable<StageContext['baseImage']>
  warnings: string[]
}

/**
 * Builds the base image a definition names (or finds it in the cache) without creating a cluster:
 * only the prepare-image steps that make the base image run, and no host check, so an image for another kind
 * of host (a trixie image on a cgroup v1 host) can be built here and carried there with the cache.
 */
export async function buildBaseImage(env: Env, request: {configFile?: string; overrides: DefinitionOverrides}): Promise<BuiltImage> {
  const definition = await readDefinition(request.configFile, request.overrides)
  const catalog = await loadCatalog(env.config)
  selectProvider(catalog.runtimes, 'container runtime', definition.containerRuntime)
  selectProvider(catalog.images, 'image', definition.image)
  // No machines: the image is shared by every cluster and no node is touched.
  const ctx = await buildContext(env, {...definition, machines: []})
  ctx.baseImage = undefined
  // Bad image settings fail before any output; a host the image refuses is fine (the image may be for another host).
  await baseImageKey(ctx)
  await runStages(env, ctx, phaseStages('image'))
  if (!ctx.baseImage) throw new UserError(`no base image was prepared for image "${definition.image}"`, {hint: 'see the output above'})
  return {image: definition.image, baseImage: ctx.baseImage, warnings: ctx.warnings}
}
