import {PipelineCommand} from '../../base-command.js'
import {type BuiltImage, buildBaseImage} from '../../cluster/image.js'
import {createRequestFrom, imageFlags} from '../../flags.js'

export default class ImageBuild extends PipelineCommand<typeof ImageBuild> {
  static summary = 'Build the base image a definition names into the cache, without creating a cluster.'
  static description =
    "Runs only the image plugin's prepare-image tasks (debootstrap for debian) and prints the cached root filesystem. The image is keyed by what goes into it, so a later create of the same definition reuses it. No host check runs: an image for another host (for example a trixie image for a cgroup v2 host, built on a cgroup v1 one) can be built here and the cache carried there."

  static examples = [
    {command: '<%= config.bin %> image build', description: 'Build the default image (Debian bookworm with containerd) into the cache.'},
    {
      command: '<%= config.bin %> image build --config trixie.toml --json',
      description: 'Build the image a definition names (here a trixie one, for a cgroup v2 host), and print where it is.',
    },
  ]

  static flags = imageFlags

  async run(): Promise<BuiltImage> {
    const built = await buildBaseImage(this.env, createRequestFrom(this.flags))
    this.warnAll(built.warnings)
    this.log(`Base image ${built.baseImage.key}: ${built.baseImage.rootfs}`)
    return built
  }
}
