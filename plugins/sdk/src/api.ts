import semver from 'semver'

/**
 * The version of the plugin API this SDK describes. A plugin states the range it was written for in
 * its package.json, `"kube-spawn": {"apiVersion": "^1.0"}`; the host refuses a plugin whose range
 * its API does not satisfy. Minor versions add, majors break.
 */
export const API_VERSION = '1.3'

/** Does `range` (a semver range such as "^1.0") admit API version `api`? */
export function apiVersionFits(range: string, api: string = API_VERSION): boolean {
  const version = semver.coerce(api)
  return version !== null && semver.validRange(range) !== null && semver.satisfies(version, range)
}
