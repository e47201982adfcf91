/**
 * Where kube-spawn caches images, Kubernetes releases and runtime files: $KUBE_SPAWN_ARTIFACT_CACHE_DIR.
 * KUBE_SPAWN_CACHE_DIR is oclif's own variable (its cache of plugin data), which kube-spawn once also
 * read; alone it is still honoured, with a warning, so that existing set-ups keep their cache.
 */
export const ARTIFACT_CACHE_ENV = 'KUBE_SPAWN_ARTIFACT_CACHE_DIR'
export const OCLIF_CACHE_ENV = 'KUBE_SPAWN_CACHE_DIR'

export function artifactCacheDir(env: NodeJS.ProcessEnv = process.env): {dir?: string; warning?: string} {
  const own = env[ARTIFACT_CACHE_ENV]
  if (own) return {dir: own}
  const old = env[OCLIF_CACHE_ENV]
  if (old)
    return {
      dir: old,
      warning: `${OCLIF_CACHE_ENV} is oclif's cache variable; kube-spawn's artifact cache is set with ${ARTIFACT_CACHE_ENV}: rename it`,
    }
  return {}
}
