#!/usr/bin/env node
// Writes docs/kspawn.schema.json from the built spec (dist/config/spec.js), so the published schema
// and the validator cannot drift apart. Run `npm run build` first. With --check, only reports drift.
import {readFile, writeFile} from 'node:fs/promises'

const target = new URL('../docs/kspawn.schema.json', import.meta.url)
const {toRootJsonSchema} = await import(new URL('../dist/config/spec.js', import.meta.url).href)
const text = `${JSON.stringify(toRootJsonSchema(), null, 2)}\n`

if (process.argv.includes('--check')) {
  const current = await readFile(target, 'utf8').catch(() => '')
  if (current !== text) {
    console.error('docs/kspawn.schema.json is out of date: run "npm run build && npm run schema"')
    process.exit(1)
  }
} else {
  await writeFile(target, text)
  console.log(`wrote ${target.pathname}`)
}
