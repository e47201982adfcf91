/**
 * The offline Kubernetes v1.20.2 fixture bundle for unit tests that run its binaries (kubeadm,
 * kubectl). prepare-bundle makes it on first use (about a minute, as root) and then just prints its
 * path, so these tests run on a fresh machine too instead of skipping. KUBE_SPAWN_FIXTURE_BUNDLE names
 * a bundle to use as it is; KUBE_SPAWN_SHARED_DIR moves the shared fixtures (default <repo>/../shared).
 */
import {execFileSync} from 'node:child_process'
import {existsSync} from 'node:fs'
import {join} from 'node:path'

import {REPO} from './cli.ts'

const PREPARE = join(process.env.KUBE_SPAWN_SHARED_DIR || join(REPO, '..', 'shared'), 'fixtures', 'kubernetes', 'prepare-bundle')

/** The bundle's directory, or undefined where the shared fixtures are not beside the clone. */
export function fixtureBundle(): string | undefined {
  if (process.env.KUBE_SPAWN_FIXTURE_BUNDLE) return process.env.KUBE_SPAWN_FIXTURE_BUNDLE
  if (!existsSync(PREPARE)) return undefined
  return execFileSync(PREPARE, {encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit']})
    .trim()
    .split('\n')
    .pop()
}

/** A binary of the bundle, or undefined (with the reason to skip) where there is no bundle. */
export function fixtureBinary(name: string): string | undefined {
  const bundle = fixtureBundle()
  return bundle && existsSync(join(bundle, 'bin', name)) ? join(bundle, 'bin', name) : undefined
}
