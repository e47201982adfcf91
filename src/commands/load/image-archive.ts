import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../base-command.js'
import {type LoadResult, loadImageArchives} from '../../cluster/load.js'

export default class LoadImageArchive extends BaseCommand<typeof LoadImageArchive> {
  static summary = "Import image archives into the running nodes, through the container runtime's own import."
  static description = `Each FILE is a docker-archive or OCI archive (docker save, podman save, ctr images export, skopeo copy … docker-archive:FILE). Every node gets every archive, in parallel, unless --nodes names some. Pods then run the images with imagePullPolicy: Never (or IfNotPresent with a tag other than latest).`

  static strict = false
  static args = {file: Args.file({description: 'Image archive(s).', required: true, exists: false})}
  static flags = {
    nodes: Flags.string({
      summary: 'Only these nodes, comma-separated: machine names or their short form (cp, w1, …).',
    }),
  }
  static examples = [
    '<%= config.bin %> load image-archive app.tar',
    '<%= config.bin %> load image-archive -c dev --nodes w1,w2 app.tar sidecar.tar',
    {
      description: 'Save an image from docker first, then load it.',
      command: 'docker save myapp:dev -o app.tar && <%= config.bin %> load image-archive app.tar',
    },
  ]

  async run(): Promise<LoadResult> {
    const result = await loadImageArchives(this.env, this.clusterName, this.positionals, {
      nodes: this.flags.nodes?.split(',').filter(Boolean),
    })
    this.warnAll(result.warnings)
    this.log(`Loaded ${result.archives.length} archive(s) into ${result.nodes.join(', ')}`)
    return result
  }
}
