#!/usr/bin/env node
// Development entry: rebuilds nothing, but runs with oclif's development settings (no manifest cache).
import {execute} from '@oclif/core'

await execute({development: true, dir: import.meta.url})
