import {Flags} from '@oclif/core'

import {BaseCommand} from '../base-command.js'
import {type HostExamination, examineHost} from '../host/preflight.js'
import {detectHost} from '../host/detect.js'
import {specDefault} from '../config/spec.js'
import {parseKubernetesVersion} from '../config/version.js'
import {UserError} from '../errors.js'

export default class Host extends BaseCommand<typeof Host> {
  static summary = 'Show what kube-spawn sees on this host and whether clusters can run here.'
  static description = `The same checks create runs first (preflight), changing nothing but a probe bridge and, where the module exists but is not loaded yet, loading overlay: the cgroup version, systemd as PID 1, machined (which backend nodes use), the systemd and kernel versions, the tools nodes need, and what the Kubernetes version means on this host. Exits 1 when a check fails. See docs/hosts.md for the tested hosts.`
  static examples = ['<%= config.bin %> host', '<%= config.bin %> host --kubernetes-version v1.35.0 --json']
  static flags = {
    'kubernetes-version': Flags.string({
      summary: 'Judge the host for this Kubernetes release.',
      default: specDefault('kubernetes-version') as string,
    }),
  }

  async run(): Promise<HostExamination> {
    const version = parseKubernetesVersion(this.flags['kubernetes-version'])
    if (!version)
      throw new UserError(`kubernetes-version "${this.flags['kubernetes-version']}" is not supported`, {
        hint: 'give vMAJOR.MINOR.PATCH, v1.20.0 or later',
      })
    const examined = await examineHost(await detectHost(), {stateRoot: this.flags.dir, kubernetesVersion: version.text})
    this.log(`Host: ${examined.description}`)
    for (const warning of examined.warnings) this.log(`warning: ${warning}`)
    for (const f of examined.failures) this.log(`✘ ${f.check}: ${f.problem} (fix: ${f.fix})`)
    this.log(
      examined.failures.length === 0 ? `✔ ready for Kubernetes ${version.text} clusters` : `✘ ${examined.failures.length} check(s) failed`,
    )
    // Set rather than thrown, so that --json still prints the examination.
    if (examined.failures.length > 0) process.exitCode = 1
    return examined
  }
}
