/**
 * The public plugin SDK of kube-spawn. A plugin imports only from 'kube-spawn/sdk', and only types:
 * everything it needs at run time (running commands, reaching nodes, adding mounts) arrives in the
 * hook options and the pipeline context. So a plugin package has no run-time dependency on the host.
 *
 * Hooks (declare them in the plugin's package.json under oclif.hooks):
 *   kube-spawn:providers  → what the plugin provides: runtimes, images, workarounds
 *   kube-spawn:tasks      → listr2 tasks for one pipeline stage
 */
import type {Hook, Hooks} from '@oclif/core/hooks'
import type {ListrTask, ListrTaskWrapper, ListrDefaultRenderer, ListrSimpleRenderer} from 'listr2'

export type {Cluster, Machine, BindMount, BindMounts, Role} from '../config/definition.js'
import type {BindMount, Cluster, Machine} from '../config/definition.js'

/** Pipeline stages in the order they run. Plugin tasks of a stage run after the host's own tasks of it. */
export const STAGES = [
  // create
  'preflight',
  'prepare-image',
  'prepare-node',
  // start
  'pre-boot',
  'boot',
  'post-boot',
  'pre-init',
  'init',
  'post-init',
  'join',
  'post-join',
  'ready',
  // stop
  'stop',
  'power-off',
  // destroy
  'destroy',
  'remove',
] as const
export type Stage = (typeof STAGES)[number]

/** A container runtime that runs inside every node. */
export interface RuntimeProvider {
  name: string
  description: string
  /** Debian package names the base image must contain. */
  packages: string[]
  /** Where the runtime keeps its data in a node; kept on the host by the bind-mount workaround. */
  dataDir: string
  /** The CRI endpoint the kubelet talks to. */
  criSocket: string
  /** The systemd unit that runs the runtime in a node. */
  service: string
  /** Imports an image archive (docker-archive layout) into the namespace the kubelet uses; the path is appended. */
  imageImportCommand: string[]
  /** Exits 0 once the runtime answers. */
  readinessCommand: string[]
}

/** A base image the node root filesystems are built from. */
export interface ImageProvider {
  name: string
  description: string
}

/** A host or node workaround that switches itself on where it is needed. */
export interface WorkaroundInfo {
  name: string
  description: string
}

export interface Provides {
  runtimes?: RuntimeProvider[]
  images?: ImageProvider[]
  workarounds?: WorkaroundInfo[]
}

/** What kube-spawn found out about the host before it touched anything. */
export interface HostInfo {
  /** systemd-machined is there, so nodes run as registered transient units. */
  machined: boolean
  /** The capability bounding set has CAP_SYS_RESOURCE (missing in some VMs and containers). */
  capSysResource: boolean
  cgroupVersion: 1 | 2
  /** /lib/modules exists and can be bound into nodes. */
  hasLibModules: boolean
  /** systemd is PID 1 (machined needs it). */
  systemdPid1: boolean
  /** The host's systemd (systemd-nspawn) version; undefined when nspawn is missing. */
  systemdVersion?: number
  /** The running kernel's release (uname -r). */
  kernel: string
  /**
   * Multiply waits by this: 1 on a normal host, 3 under full CPU emulation (QEMU without KVM), or
   * $KUBE_SPAWN_TIMEOUT_SCALE. Plugins scale their own waits by it too.
   */
  timeoutScale: number
}

export type {WaitOptions} from '../util/wait.js'
import type {WaitOptions} from '../util/wait.js'

export interface ExecResult {
  stdout: string
  stderr: string
  exitCode: number
}

export interface RunOptions {
  /** Text written to the command's standard input. */
  input?: string
  /** Fail after this many milliseconds. */
  timeoutMs?: number
  /** Stream output into this task's output line. */
  task?: StageTaskWrapper
  /** Return a non-zero exit instead of throwing. */
  allowFailure?: boolean
  /**
   * Kills the command when this aborts. ctx.run and node.exec pass the pipeline's own signal (aborted
   * on Ctrl-C or SIGTERM) by default; give another only for work that must outlive an interrupt.
   */
  signal?: AbortSignal
}

/** A node as plugins see it. */
export interface NodeHandle {
  readonly name: string
  readonly role: Machine['role']
  readonly ip: string
  /** The node's private directory on the host (its layers and bind-mounted data live here). */
  readonly dir: string
  /** Runs a command inside the running node. */
  exec(argv: string[], options?: RunOptions): Promise<ExecResult>
  /** Writes a file into the node's root filesystem (works whether or not it is running). */
  writeFile(path: string, content: string, mode?: number): Promise<void>
  /** Reads a file from the node's root filesystem (its own layer over the base image when it is not running); undefined when absent. */
  readFile(path: string): Promise<string | undefined>
  /** Adds a bind mount for the node's next boot (call it in the pre-boot stage). */
  addBindMount(mount: BindMount & {readOnly?: boolean}): void
}

/** The listr2 context every stage task receives. */
export interface StageContext {
  readonly cluster: Cluster
  readonly clusterDir: string
  /** Shared across clusters: image and artifact caches live below it. */
  readonly cacheDir: string
  readonly runtime: RuntimeProvider
  readonly image: ImageProvider
  readonly host: HostInfo
  /** What the cluster's Kubernetes release expects of the runtime. */
  readonly kubernetes: {version: string; sandboxImage: string; cgroupDriver: 'cgroupfs' | 'systemd'}
  readonly nodes: NodeHandle[]
  readonly dryRun: boolean
  /** The base root filesystem; set by the image plugin in prepare-image. */
  baseImage?: {rootfs: string; key: string}
  /** Settings from [plugin-config.<name>] in kspawn.toml. */
  pluginConfig(name: string): Record<string, unknown>
  /** Runs a command on the host. */
  run(argv: string[], options?: RunOptions): Promise<ExecResult>
  /** A warning the user sees after the pipeline. */
  warn(message: string): void
  /**
   * Probes `condition` until it returns something other than false or undefined, and returns that; the
   * first probe runs at once, a probe that throws ends the wait. Ends with a "timed out after … waiting
   * for <describe>" error, or with the interrupt when ctx.signal aborts. Scale the timeout by
   * host.timeoutScale.
   */
  waitFor<T>(condition: () => T | false | undefined | Promise<T | false | undefined>, options: WaitOptions): Promise<T>
  /** Free-form values plugins hand to later stages, keyed by plugin name. */
  readonly shared: Map<string, unknown>
  /**
   * Aborted when the user interrupts the command (Ctrl-C, SIGTERM). ctx.run and node.exec already
   * honour it; a task that waits in a loop of its own should call signal.throwIfAborted() each round.
   */
  readonly signal?: AbortSignal
}

export type StageTaskWrapper = ListrTaskWrapper<StageContext, ListrDefaultRenderer, ListrSimpleRenderer>
export type StageTask = ListrTask<StageContext, ListrDefaultRenderer, ListrSimpleRenderer>

/** The options of the kube-spawn:tasks hook. */
export interface TasksHookOptions {
  stage: Stage
  /** The context the tasks will run with (for deciding which tasks to return). */
  ctx: StageContext
}

export type KubeSpawnHooks = Hooks & {
  'kube-spawn:providers': {options: Record<never, never>; return: Provides}
  'kube-spawn:tasks': {options: TasksHookOptions; return: StageTask[] | undefined}
}

/**
 * The type of a hook handler, e.g. `const hook: KubeSpawnHook<'kube-spawn:tasks'> = async ({stage, ctx}) => [...]`.
 * (@oclif/core 5 declares `Hooks` as a type alias, which `declare module` cannot augment, so kube-spawn
 * passes its hook map as the generic parameter that Hook and Config.runHook take.)
 */
export type KubeSpawnHook<K extends keyof KubeSpawnHooks> = Hook<K, KubeSpawnHooks>
