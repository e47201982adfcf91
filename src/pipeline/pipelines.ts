/**
 * Every pipeline of kube-spawn in one place, in the order it runs (as kind's create.go lists its
 * actions). Each stage names the host's own tasks; the tasks plugins return for that stage from the
 * kube-spawn:tasks hook follow them, in plugin-name order (runner.ts). A plugin never changes this list.
 */
import type {HostStep, StageDeclaration} from '../context/index.js'
import {checkDiskSpace, checkHost} from '../host/tasks.js'
import {checkImage, makeBaseImage, useBaseImage} from '../image/prepare.js'
import {importBundleImages, linkSharedImageStore, mountKubernetesBinaries, fetchKubernetesStep} from '../kubernetes/binaries.js'
import {clearUnfinishedKubeadm, kubeadmInitStep, kubeadmJoinControlPlanesStep, kubeadmJoinStep} from '../kubernetes/kubeadm.js'
import {bindRegistryStorage, publishRegistryHosting, waitForInfraMachines} from '../cluster/infra.js'
import {removeKubeconfigContextStep, writeKubeconfig} from '../kubernetes/kubeconfig-steps.js'
import {enableKubelet, installKubelet, stopKubelet} from '../kubernetes/kubelet.js'
import {configurePodNetworkStep, recordPodCidrsStep} from '../kubernetes/pod-network.js'
import {waitForDefaultServiceAccount, waitForStaticPods, waitUntilReady} from '../kubernetes/readiness.js'
import {
  addUserMounts,
  bootTheNodes,
  createBridge,
  forgetTheNodes,
  layOutNodes,
  powerOffNodes,
  removeBridge,
  removePortMappings,
  removeClusterDir,
  stopAnyNode,
} from '../node/tasks.js'
import {checkRuntime} from '../runtime/compat.js'
import {fetchRuntimeFiles, installRuntimeFiles} from '../runtime/files.js'
import {stopRuntime, waitForRuntime} from '../runtime/lifecycle.js'
import type {Stage} from '@kube-spawn/sdk'

const at = (stage: Stage, ...host: HostStep[]): StageDeclaration => ({stage, host})
/** A Kubernetes set-up stage: --skip-cluster-init leaves it out. */
const init = (stage: Stage, ...host: HostStep[]): StageDeclaration => ({stage, host, clusterInit: true})

const PHASES = {
  /** create: check the host, fetch Kubernetes, build or reuse the base image, lay out the nodes. Nothing boots. */
  create: [
    at('preflight', checkHost, checkRuntime, checkImage),
    at('prepare-image', checkDiskSpace, fetchKubernetesStep, fetchRuntimeFiles, makeBaseImage, useBaseImage),
    at('prepare-node', layOutNodes, installRuntimeFiles, installKubelet),
  ],
  /** start: boot the nodes; the first time set Kubernetes up on them, later bring it back. */
  start: [
    // The binaries are mounted on every boot, so even a --skip-cluster-init boot of an initialized cluster has them.
    at('pre-boot', createBridge, addUserMounts, bindRegistryStorage, mountKubernetesBinaries),
    // After the plugins' pre-boot tasks: the shared image store goes into the data dirs the varlib workaround binds.
    at('boot', linkSharedImageStore, bootTheNodes),
    at('post-boot', waitForRuntime, waitForInfraMachines),
    init('pre-init', clearUnfinishedKubeadm, configurePodNetworkStep, importBundleImages),
    init('init', kubeadmInitStep),
    init('post-init'),
    init('join', kubeadmJoinControlPlanesStep, kubeadmJoinStep),
    init('post-join', enableKubelet),
    init(
      'ready',
      waitUntilReady,
      waitForStaticPods,
      waitForDefaultServiceAccount,
      recordPodCidrsStep,
      publishRegistryHosting,
      writeKubeconfig,
    ),
  ],
  /** stop: the kubelet first (so it restarts nothing), then the containers and the runtime, then power off. Data stays. */
  stop: [at('stop', stopKubelet, stopRuntime), at('power-off', powerOffNodes, removePortMappings)],
  /** destroy: plugins' own extras first, then every trace the host made. */
  destroy: [at('destroy'), at('remove', stopAnyNode, removeBridge, forgetTheNodes, removeKubeconfigContextStep, removeClusterDir)],
  /** image build: the base image only, no host check (an image may be built here for another host). */
  image: [at('prepare-image', makeBaseImage, useBaseImage)],
} as const satisfies Record<string, readonly StageDeclaration[]>

export type PhaseName = keyof typeof PHASES

/** The commands' pipelines: up is create, then start on the saved cluster (each phase has its own context and lock). */
export const PIPELINES = {
  create: ['create'],
  start: ['start'],
  up: ['create', 'start'],
  stop: ['stop'],
  destroy: ['destroy'],
  'image build': ['image'],
} as const satisfies Record<string, readonly PhaseName[]>

export interface PhaseOptions {
  /** Leave out the Kubernetes set-up stages: boot the machines only. */
  skipClusterInit?: boolean
}

/** The stages of one phase, as declared, less what the options leave out. */
export function phaseStages(name: PhaseName, {skipClusterInit = false}: PhaseOptions = {}): readonly StageDeclaration[] {
  const stages: readonly StageDeclaration[] = PHASES[name]
  return skipClusterInit ? stages.filter((d) => !d.clusterInit) : stages
}
