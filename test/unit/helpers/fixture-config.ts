/**
 * An oclif Config for test/fixtures/dispatch: a root without commands and two plugins, ks-fixture-alpha
 * and ks-fixture-beta, linked the way "kube-spawn plugins link" would (through the data dir's
 * package.json). alpha answers 50 ms after beta, so oclif sees them complete in reverse name order.
 * Their kube-spawn:tasks handlers look at ctx.mode: "throw" makes beta throw, "hang" makes alpha
 * never answer. `extra` links more of the fixture plugins: "syntax" (a syntax error on line 4 of its
 * index.js), "future" (written for plugin API ^2.0).
 */
import {Config, settings} from '@oclif/core'
import {after, before} from 'node:test'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {FIXTURES} from './cli.ts'

export const FIXTURE_ROOT = join(FIXTURES, 'dispatch')

export async function loadFixtureConfig(extra: string[] = []): Promise<{config: Config; cleanup: () => Promise<void>}> {
  // The fixture plugins are plain JavaScript; there is nothing to transpile, so no warning about it.
  settings.enableAutoTranspile = false
  const dataDir = await mkdtemp(join(tmpdir(), 'ks-fixture-data-'))
  const link = (name: string) => ({type: 'link', name: `ks-fixture-${name}`, root: join(FIXTURE_ROOT, 'plugins', name)})
  await writeFile(
    join(dataDir, 'package.json'),
    JSON.stringify({private: true, oclif: {schema: 1, plugins: [link('beta'), link('alpha'), ...extra.map(link)]}}),
  )
  const previous = process.env.KSFIXTURE_DATA_DIR
  process.env.KSFIXTURE_DATA_DIR = dataDir
  try {
    const config = await Config.load({root: FIXTURE_ROOT})
    return {config, cleanup: () => rm(dataDir, {recursive: true, force: true})}
  } finally {
    if (previous === undefined) delete process.env.KSFIXTURE_DATA_DIR
    else process.env.KSFIXTURE_DATA_DIR = previous
  }
}

/** loadFixtureConfig as hooks of the enclosing describe: the Config, loaded before its tests and removed after. */
export function useFixtureConfig(extra: string[] = []): () => Config {
  let loaded: Awaited<ReturnType<typeof loadFixtureConfig>> | undefined
  before(async () => {
    loaded = await loadFixtureConfig(extra)
  })
  after(async () => loaded?.cleanup())
  return () => loaded!.config
}
