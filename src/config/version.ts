export interface KubernetesVersion {
  major: number
  minor: number
  patch: number
  /** The canonical spelling, with the leading v. */
  text: string
}

export const OLDEST_SUPPORTED_MINOR = 20

/** Parses vMAJOR.MINOR.PATCH (the v is optional); undefined when malformed or older than v1.20. */
export function parseKubernetesVersion(text: string): KubernetesVersion | undefined {
  const match = /^v?(\d+)\.(\d+)\.(\d+)$/.exec(text)
  if (!match) return undefined
  const [major, minor, patch] = match.slice(1).map(Number)
  if (major !== 1 || minor < OLDEST_SUPPORTED_MINOR) return undefined
  return {major, minor, patch, text: `v${major}.${minor}.${patch}`}
}
