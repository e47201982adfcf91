import {readFile} from 'node:fs/promises'
import {join} from 'node:path'

import {writeFileAtomic} from '../util/fs.js'

/** Files create records in the cluster directory, which later commands read back. */
const BASE_IMAGE_FILE = 'base-image.json'
const PROVIDERS_FILE = 'providers.json'

export interface BaseImageRecord {
  rootfs: string
  key: string
}

export interface ProvidersRecord {
  runtime: string
  image: string
}

/** The base image the node layers sit on (so start uses the very same one), and the plugins behind the runtime and image. */
export async function writeClusterRecords(clusterDir: string, baseImage: BaseImageRecord, providers: ProvidersRecord): Promise<void> {
  await writeFileAtomic(join(clusterDir, BASE_IMAGE_FILE), `${JSON.stringify(baseImage)}\n`, 0o600)
  await writeFileAtomic(join(clusterDir, PROVIDERS_FILE), `${JSON.stringify(providers)}\n`, 0o600)
}

export function readBaseImage(clusterDir: string): Promise<BaseImageRecord | undefined> {
  return readJson<BaseImageRecord>(join(clusterDir, BASE_IMAGE_FILE))
}

export function readProviders(clusterDir: string): Promise<ProvidersRecord | undefined> {
  return readJson<ProvidersRecord>(join(clusterDir, PROVIDERS_FILE))
}

async function readJson<T>(path: string): Promise<T | undefined> {
  const text = await readFile(path, 'utf8').catch(() => undefined)
  return text ? (JSON.parse(text) as T) : undefined
}
