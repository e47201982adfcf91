/** The kubelet in the nodes: its unit and binaries, enabled for later boots, stopped before the runtime. */
import type {HostStep} from '../context/index.js'
import {writeNodeFiles} from '../node/node-files.js'
import {KUBERNETES_BINARIES} from './artifacts.js'
import {NODE_BIN_DIR, artifacts} from './binaries.js'
import {KUBELET_UNIT_PATH, kubeletSystemdFiles} from './kubelet-unit.js'
import {answersCadvisorDockerProbe, versionTraits} from './versions.js'
import {renderYaml} from './yaml.js'

const KUBELET_WANTS_LINK = '/etc/systemd/system/multi-user.target.wants/kubelet.service'

export const installKubelet: HostStep = {
  title: 'Install the kubelet unit and the Kubernetes binaries in each node',
  task: async (ctx) => {
    const traits = versionTraits(ctx.cluster.kubernetesVersion)
    for (const node of ctx.nodes) {
      const answerProbe = answersCadvisorDockerProbe(traits, ctx.runtime.kubelet === 'dockershim')
      await writeNodeFiles(node, kubeletSystemdFiles(ctx.runtime.services[0], traits, answerProbe))
      for (const binary of KUBERNETES_BINARIES) await node.symlink(`/usr/local/bin/${binary}`, `${NODE_BIN_DIR}/${binary}`)
      if (artifacts(ctx).crictl) {
        await node.symlink('/usr/local/bin/crictl', `${NODE_BIN_DIR}/crictl`)
        await node.writeFile(
          '/etc/crictl.yaml',
          renderYaml([{'runtime-endpoint': ctx.runtime.criSocket, 'image-endpoint': ctx.runtime.criSocket}]),
        )
      }
    }
  },
}

export const enableKubelet: HostStep = {
  title: 'Enable the kubelet in every node for later boots',
  // It stays enabled in each node's layer: a later start need not ask systemd in every node again (2 s for 3 nodes).
  skip: (ctx) => (ctx.cluster.state.initialized ? 'enabled at the first start' : false),
  // What systemctl enable does, without its daemon-reload in every node (0.5 s each): systemd reads the
  // wants link at the next boot.
  task: async (ctx) => {
    await Promise.all(ctx.nodes.map((n) => n.symlink(KUBELET_WANTS_LINK, KUBELET_UNIT_PATH)))
    ctx.cluster.state.initialized = true
  },
}

/** Stop: the kubelet first, so it does not restart the containers the runtime then kills. */
export const stopKubelet: HostStep = {
  title: 'Stop the kubelet in every node',
  skip: (ctx) => (ctx.cluster.state.initialized ? false : 'Kubernetes was never set up'),
  task: async (ctx) => {
    await Promise.all(
      ctx.nodes.map(async (node) => {
        const running = await node.exec(['true'], {allowFailure: true}).then(
          () => true,
          () => false,
        )
        if (running) await node.exec(['systemctl', 'stop', 'kubelet.service'], {allowFailure: true, timeoutMs: 30_000})
      }),
    )
  },
}
