/**
 * The contexts of kube-spawn's pipelines, as types only. Every layer may import them (nodes, Kubernetes,
 * the pipeline runner, the services), and they import nothing above themselves: no arrow points up.
 */
import type {Config} from '@oclif/core'
import type {ListrDefaultRenderer, ListrSimpleRenderer, ListrTaskWrapper} from 'listr2'

import type {BindMount} from '../config/definition.js'
import type {Catalog} from '../plugins/providers.js'
import type {ExecResult, NodeHandle, Stage, StageContext} from '@kube-spawn/sdk'
import type {StateRoot} from '../state/store.js'
import type {HostRunOptions} from '../util/run.js'

export type RendererName = 'default' | 'simple' | 'silent' | 'test'

/** What every service needs: the oclif config (for hooks), the state root and the output policy. */
export interface Env {
  config: Config
  root: StateRoot
  renderer: RendererName
  /** Aborted on Ctrl-C or SIGTERM during create, start and up (util/interrupt.ts). */
  signal?: AbortSignal
}

export type NodeMount = BindMount & {readOnly?: boolean}

/** A node as the host's own tasks see it: the plugins' NodeHandle, plus what only the host may do. */
export interface HostNode extends NodeHandle {
  /** The bind mounts added for the next boot. */
  readonly mounts: NodeMount[]
  exec(argv: string[], options?: HostRunOptions): Promise<ExecResult>
  /** Makes `path` a symlink to `target` in the node's root, replacing what was there. */
  symlink(path: string, target: string): Promise<void>
  /** Removes a file kube-spawn wrote into the node's root, if it is there. */
  removeFile(path: string): Promise<void>
}

/** Which plugin provided the runtime and the image at create, so that a warning can name a plugin that is gone. */
export interface RecordedProviders {
  runtime: string
  image: string
}

/** The host's own context: a StageContext with the host's node handles and bookkeeping. */
export interface ClusterContext extends StageContext {
  /** The Kubernetes nodes (control planes, then workers), as plugins see them too. */
  readonly nodes: HostNode[]
  /** Every machine: the nodes, then the load balancer and the registry. Booting, layout and power-off use these. */
  readonly machines: HostNode[]
  readonly warnings: string[]
  readonly catalog: Catalog
  /** Built for teardown (stop, destroy, export logs): plugin failures are warnings. */
  readonly withoutPlugins: boolean
  /** The plugins that provide the runtime and the image. */
  readonly providerPlugins: RecordedProviders
  /** The state root that holds every cluster (--dir). */
  readonly stateRoot: string
  /** When this command began (Date.now()): the nodes' Ready heartbeats must be newer. */
  readonly startedAt: number
}

export type HostTaskWrapper = ListrTaskWrapper<StageContext, ListrDefaultRenderer, ListrSimpleRenderer>

/** A task of the host itself, typed over the host's full context. src/pipeline/pipelines.ts places it at its stage. */
export interface HostStep {
  title: string
  /** The title for this cluster, when it depends on it (e.g. names the image key); the plan shows it. */
  titleFor?: (ctx: ClusterContext) => string | Promise<string>
  task: (ctx: ClusterContext, task: HostTaskWrapper) => void | Promise<void>
  /** Why the task would not run (a string), false when it would. */
  skip?: (ctx: ClusterContext) => string | false | Promise<string | false>
}

/** One stage of a pipeline: the host's own tasks in order; the plugins' tasks of the stage follow them. */
export interface StageDeclaration {
  readonly stage: Stage
  readonly host: readonly HostStep[]
  /** Kubernetes set-up, left out by --skip-cluster-init. */
  readonly clusterInit?: true
}
