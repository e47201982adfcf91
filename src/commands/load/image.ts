import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../base-command.js'
import {type LoadResult, loadHostImages} from '../../cluster/load.js'

export default class LoadImage extends BaseCommand<typeof LoadImage> {
  static summary = "Copy images from this host's docker, podman or containerd into the running nodes."
  static description = `Saves the images with the first of docker, podman and containerd (ctr, namespace default) that answers on this host, says which, and imports the archive into every node (or those --nodes names) like load image-archive.`

  static strict = false
  static args = {ref: Args.string({description: 'Image reference(s), e.g. myapp:dev.', required: true})}
  static flags = {
    nodes: Flags.string({
      summary: 'Only these nodes, comma-separated: machine names or their short form (cp, w1, …).',
    }),
  }
  static examples = ['<%= config.bin %> load image myapp:dev', '<%= config.bin %> load image -c dev --nodes w1 myapp:dev busybox:1.35']

  async run(): Promise<LoadResult & {source: string}> {
    const refs = this.positionals
    const result = await loadHostImages(this.env, this.clusterName, refs, {nodes: this.flags.nodes?.split(',').filter(Boolean)})
    this.warnAll(result.warnings)
    this.log(`Loaded ${refs.join(', ')} from the host's ${result.source} into ${result.nodes.join(', ')}`)
    return result
  }
}
