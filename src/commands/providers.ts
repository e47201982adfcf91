import {BaseCommand} from '../base-command.js'
import {formatTable} from '../cluster/status.js'
import {type Catalog, loadCatalog} from '../plugins/providers.js'

interface ProviderRow {
  kind: 'runtime' | 'image' | 'workaround'
  name: string
  plugin: string
  description: string
}

export default class Providers extends BaseCommand<typeof Providers> {
  static summary = 'List the container runtimes, base images and workarounds the installed plugins provide.'
  static description = 'Names in the RUNTIME and IMAGE rows are what container-runtime and image in kspawn.toml accept.'
  static examples = ['<%= config.bin %> providers', '<%= config.bin %> providers --json']

  async run(): Promise<ProviderRow[]> {
    const rows = toRows(await loadCatalog(this.config))
    this.log(
      formatTable(
        ['KIND', 'NAME', 'PLUGIN', 'DESCRIPTION'],
        rows.map((r) => [r.kind, r.name, r.plugin, r.description]),
      ),
    )
    return rows
  }
}

function toRows(catalog: Catalog): ProviderRow[] {
  return [
    ...catalog.runtimes.map((o) => ({
      kind: 'runtime' as const,
      name: o.provider.name,
      plugin: o.plugin,
      description: o.provider.description,
    })),
    ...catalog.images.map((o) => ({kind: 'image' as const, name: o.provider.name, plugin: o.plugin, description: o.provider.description})),
    ...catalog.workarounds.map((o) => ({
      kind: 'workaround' as const,
      name: o.provider.name,
      plugin: o.plugin,
      description: o.provider.description,
    })),
  ]
}
