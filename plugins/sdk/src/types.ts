/**
 * The types of kube-spawn's plugin API. They are self-contained (no oclif or listr2 types), so a plugin
 * needs nothing but this package to type-check; the host's own objects fit them structurally.
 */
import type {WaitOptions} from './wait.js'

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

export interface BindMount {
  src: string
  dst: string
}

export interface BindMounts {
  readOnly: BindMount[]
  readWrite: BindMount[]
}

/**
 * A machine's role. Kubernetes nodes are control planes and workers; (API 1.2) a cluster may also hold
 * machines that run no kubelet: its API server load balancer and its image registry. ctx.nodes holds the
 * Kubernetes nodes only; cluster.machines lists every machine.
 */
export type Role = 'control-plane' | 'worker' | 'load-balancer' | 'registry'

export interface Machine {
  name: string
  role: Role
  ip: string
  running: boolean
  bindmount: BindMounts
}

/**
 * [kubernetes] of kspawn.toml: where Kubernetes comes from and how kubeadm configures it. The host fills
 * in every field but `patches`; they are optional so that a Cluster written before them still fits.
 */
export interface KubernetesSettings {
  source: string
  /** Gate name → on, for the API server, controller manager, scheduler, kubelet and kube-proxy. */
  featureGates?: Record<string, boolean>
  /** Flag name (without dashes) → value, after kube-spawn's own flags of the component. */
  apiServerExtraArgs?: Record<string, string>
  controllerManagerExtraArgs?: Record<string, string>
  schedulerExtraArgs?: Record<string, string>
  kubeletExtraArgs?: Record<string, string>
  /** A host directory of kubeadm patch files, copied into each node and given to kubeadm init and join. */
  patches?: string
  /** YAML patches merged into the rendered kubeadm config documents, in order. */
  configPatches?: string[]
  /** kube-proxy's mode; "none" runs no kube-proxy. Default "iptables". */
  kubeProxyMode?: 'iptables' | 'nftables' | 'none'
}

/** A fully resolved cluster definition plus the state kube-spawn records beside it. */
export interface Cluster {
  clusterName: string
  containerRuntime: string
  image: string
  kubernetesVersion: string
  nodes: number
  token: string
  cni: 'bridge' | 'none'
  kubernetes: KubernetesSettings
  network: {subnet: string; clusterSubnet?: string; podCidr: string; serviceCidr: string; egress: boolean}
  /** Control-plane nodes (API 1.2; absent means 1): more than one sit behind the load-balancer machine. */
  controlPlanes?: number
  /** [registry] (API 1.2; absent means none): the cluster's own image registry and where nodes reach it. */
  registry?: RegistrySettings
  /** [[port-mapping]]: host ports forwarded to node ports (API 1.1; absent means none). */
  portMappings?: PortMapping[]
  bindmount: BindMounts
  runtimeConfig: {cgroupPerQos: boolean; failSwapOn: boolean; timeout: string; useLegacyCgroupDriver: boolean}
  pluginConfig: Record<string, Record<string, unknown>>
  machines: Machine[]
  /**
   * initialized is false until kubeadm init and every join have succeeded: the host sets it in the
   * post-join stage (its "Enable the kubelet" task, which runs before the plugins' post-join tasks),
   * so a plugin's post-init task sees false and its post-join task true on the first start. In later
   * starts it is true from the beginning, and the init and join stages are skipped.
   */
  state: {initialized: boolean}
}

/** [registry]: a registry machine of the cluster, which every node's runtime pulls from over plain HTTP. */
export interface RegistrySettings {
  enabled: boolean
  /** The registry's port, on its machine and on the host's 127.0.0.1. */
  port: number
  /** A host directory that holds the registry's storage and outlives destroy; absent: the machine's own layer. */
  dir?: string
  /**
   * Where nodes' runtimes and pods reach the registry, "<ip>:<port>": image names start with it. Filled in
   * by the host for a cluster whose machines are planned (after create).
   */
  address?: string
}

/** A host port forwarded to a port of one node (kind's extraPortMappings). */
export interface PortMapping {
  hostPort: number
  nodePort: number
  protocol: 'tcp' | 'udp'
  /** A machine name (or its short form, w1); the first worker, or the control plane of a one-node cluster, when absent. */
  node?: string
}

export type CgroupDriver = 'systemd' | 'cgroupfs'

/** An apt repository a runtime's packages come from, with the key that signs it. */
export interface AptSource {
  /** A file name: the source goes to /etc/apt/sources.list.d/<name>.list, its key to /etc/apt/keyrings/<name>.asc. */
  name: string
  /** The one-line-style entry without [signed-by]: "https://pkgs.example.org/deb/ /". The host adds signed-by. */
  entry: string
  /**
   * The signing key (ASCII-armoured or binary): inline, fetched and checked against its SHA-256, or (API 1.1)
   * fetched and checked to hold the primary key with this fingerprint (40 hex digits). Prefer the
   * fingerprint for keys whose expiry their owner extends in place, as openSUSE's build service does.
   */
  key: {content: string} | {url: string; sha256: string} | {url: string; fingerprint: string}
}

/** The packages a runtime needs in an image of one family, and where they come from. */
export interface RuntimePackages {
  names: string[]
  aptSources?: AptSource[]
}

/** What a runtime file's content may depend on: rendered once per node at prepare-node. */
export interface FileContext {
  readonly cluster: Cluster
  readonly node: {name: string; ip: string; role: Role}
  readonly kubernetes: KubernetesInfo
  readonly host: HostInfo
  /** Where the host writes the pod network's CNI config, and where the runtime's CNI plugins are. */
  readonly cni: {confDir: string; binDir: string}
  /** The cluster's image and its family (API 1.1). */
  readonly image: {name: string; family: string}
}

/**
 * A file the host puts into every node: inline (text, or rendered per node) or downloaded and verified.
 * A download may be a tar archive (any compression tar knows) of which one member is the file: `extract`
 * names it (API 1.1), e.g. "cri-dockerd/cri-dockerd".
 */
export type RuntimeFile = {path: string; mode?: number} & (
  {content: string | ((ctx: FileContext) => string)} | {url: string; sha256: string; extract?: string}
)

/** What a runtime's variant and refusal may look at (API 1.1): the cluster's choices, before anything is written. */
export interface RuntimeQuery {
  /** e.g. "v1.20.2". */
  readonly kubernetesVersion: string
  /** Where the Kubernetes binaries come from: "release" (downloaded), or an offline bundle's path. */
  readonly kubernetesSource: string
  readonly image: string
  readonly family: string
  readonly cgroupDriver: CgroupDriver
  readonly host: HostInfo
  pluginConfig(name: string): Record<string, unknown>
  /**
   * (1.2) The cluster's registry: `address` ("<ip>:<port>") is where runtimes reach it; the host reaches it as
   * localhost:`port` too. Absent without a registry, and in a definition not yet created.
   */
  readonly registry?: {address: string; port: number}
}

/** Where a runtime keeps its imported images (RuntimeProvider.imageStore). */
export interface RuntimeImageStore {
  /** One of the runtime's dataDirs; the host shares it only where a host directory is bound there (the varlib workaround). */
  dir: string
  /** Files below `dir` (relative paths) that the runtime rewrites in place, such as its databases: copied into each node, not linked. */
  rewrittenFiles: string[]
  /** Files below `dir` that identify one runtime instance (an instance UUID): left out, so that each node makes its own. */
  instanceFiles?: string[]
}

/** The fields a runtime's variant may replace for one cluster. */
export type RuntimeVariant = Partial<Omit<RuntimeProvider, 'name' | 'description' | 'variant' | 'refuse' | 'supports'>>

/**
 * A container runtime that runs inside every node, as data. The host installs, configures, waits for
 * and stops it from these fields; a runtime plugin needs no tasks of its own.
 */
export interface RuntimeProvider {
  name: string
  description: string
  /** Per image family ("debian", "flatcar", …): the packages the image must contain. */
  packages: Record<string, RuntimePackages>
  /** Config files, unit files and binaries the host writes into every node at prepare-node. */
  files?: RuntimeFile[]
  /**
   * (1.2) Its files make the runtime pull from `cluster.registry.address` over plain HTTP when the cluster has a
   * [registry]. The host refuses a registry for a runtime without it.
   */
  configuresRegistry?: boolean
  /** Commands that must be on the node's PATH once the image and files are in place (checked in the root). */
  commands: string[]
  /** Where the runtime keeps its data in a node; the varlib workaround binds them from the host. */
  dataDirs: string[]
  /** The CRI endpoint the kubelet talks to. */
  criSocket: string
  /** The cgroup drivers the runtime can use; the cluster's driver must be among them. */
  cgroupDrivers: CgroupDriver[]
  /** Where the runtime looks for CNI plugins in a node (the host checks bridge, host-local, loopback and portmap are there). */
  cniBinDir: string
  /** Imports an image archive (docker-archive layout) into the namespace the kubelet uses; the path is appended. */
  imageImportCommand: string[]
  /**
   * (API 1.3) Lets the host share imported images between nodes: the bundle's images are imported once, into
   * one node, kept in kube-spawn's cache, and hard-linked into every new node's `dir` before it first boots, so
   * that its import is skipped. Only for a runtime that never writes into a file it has written once, except
   * `rewrittenFiles`, which each node gets a copy of. Without it every node imports the images itself.
   */
  imageStore?: RuntimeImageStore
  /** The systemd units that run the runtime, the main one first. The host enables them, orders the kubelet after them and stops them. */
  services: string[]
  /** Exits 0 once the runtime answers; the host runs it in every node after boot. */
  readinessCommand: string[]
  /** Kills every container; the host runs it after stopping the kubelet and before stopping the services. */
  stopContainersCommand?: string[]
  /**
   * Whether the kubelet's port-forward needs socat in the node: true, or needed only below a version of
   * one of the runtime's packages (runtimes that forward natively from that version on).
   */
  needsSocat: boolean | {package: string; belowVersion: string}
  /** What the runtime works with; a cluster outside it is refused in preflight. */
  supports?: {images?: string[]; kubernetes?: {min?: string; max?: string}}
  /**
   * How the kubelet reaches the runtime (API 1.1): over CRI at criSocket ("cri", the default), or through
   * the kubelet's built-in dockershim ("dockershim", Kubernetes 1.23 and older only; criSocket is then
   * unix:///var/run/dockershim.sock, the socket the kubelet itself serves).
   */
  kubelet?: 'cri' | 'dockershim'
  /**
   * The runtime as it is for one cluster (API 1.1): fields that depend on the Kubernetes version, the
   * image family or the plugin's settings. The host merges the answer over the declaration once, before
   * anything is checked or written, and every stage sees the merged runtime.
   */
  variant?(query: RuntimeQuery): RuntimeVariant
  /**
   * Why the runtime cannot serve this cluster, in one line naming what it supports, or undefined (API 1.1).
   * Runs before anything is written, in --dry-run too, after the `supports` checks.
   */
  refuse?(query: RuntimeQuery): string | undefined
}

/** How an image's root filesystem is made when its cache entry is missing. */
export interface ImageBuildContext {
  /** The directory to fill: it is empty, and becomes the cached root once build resolves. */
  readonly rootfs: string
  /** The runtime's packages for this image's family. */
  readonly packages: RuntimePackages
  readonly host: HostInfo
  pluginConfig(name: string): Record<string, unknown>
  run(argv: string[], options?: RunOptions): Promise<ExecResult>
  /** A progress line shown under the task. */
  output(line: string): void
  readonly signal?: AbortSignal
  /** kube-spawn's artifact cache (API 1.1): a plugin may keep its own downloads below `<cacheDir>/<plugin name>/`. */
  readonly cacheDir: string
  /**
   * Downloads a file once into the artifact cache, verified against its digest, and returns its path
   * (API 1.1). The file appears only after it matched; a mismatch or an unreachable server is an error.
   */
  download(file: DownloadRequest): Promise<string>
}

/** A file to download and verify: its SHA-256 or SHA-512 (hex). */
export interface DownloadRequest {
  url: string
  digest: {sha256: string} | {sha512: string}
  /** Named in progress and errors, e.g. "the Flatcar 4152.2.0 developer container". */
  what?: string
}

/** What an image's key and checks may look at. */
export interface ImageContext {
  readonly cluster: Cluster
  readonly runtime: RuntimeProvider
  readonly host: HostInfo
  pluginConfig(name: string): Record<string, unknown>
}

/**
 * A base image the node root filesystems are made from. The host caches the root by key, builds or
 * fetches it when missing, and checks it (docs/plugins.md#what-a-root-filesystem-must-contain).
 */
export interface ImageProvider {
  name: string
  description: string
  /** Which runtime packages apply ("debian", "flatcar", …). */
  family: string
  /** The cache key of the root for this cluster: it must change whenever what is built changes. */
  key(ctx: ImageContext): string
  /** Why this image cannot be used for this cluster on this host (a settings or host mismatch), or undefined. Runs in --dry-run too. */
  refuse?(ctx: ImageContext): string | undefined
  /** Host programs the build or fetch needs (checked in preflight when the root is not cached). */
  hostCommands?: string[]
  /** Builds the root into ctx.rootfs. */
  build?(ctx: ImageBuildContext): Promise<void>
  /** Or: a root filesystem tarball to download, verify and unpack (tar, any compression tar knows). */
  fetch?(ctx: ImageContext): {url: string; sha256: string}
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

/** What the cluster's Kubernetes release expects of the runtime. */
export interface KubernetesInfo {
  version: string
  sandboxImage: string
  cgroupDriver: CgroupDriver
}

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
  readonly role: Role
  readonly ip: string
  /** The node's private directory on the host (its layers and bind-mounted data live here). */
  readonly dir: string
  /** Runs a command inside the running node. */
  exec(argv: string[], options?: RunOptions): Promise<ExecResult>
  /** Writes a file into the node's root filesystem (works whether or not it is running). */
  writeFile(path: string, content: string | Uint8Array, mode?: number): Promise<void>
  /** Copies a host file into the node's root filesystem (binaries too). */
  copyIn(hostPath: string, path: string, mode?: number): Promise<void>
  /** Reads a file from the node's root filesystem (its own layer over the base image when it is not running); undefined when absent. */
  readFile(path: string): Promise<string | undefined>
  /** Adds a bind mount for the node's next boot (call it in the pre-boot stage). */
  addBindMount(mount: BindMount & {readOnly?: boolean}): void
}

/** The context every stage task receives. */
export interface StageContext {
  readonly cluster: Cluster
  readonly clusterDir: string
  /** Shared across clusters: image and artifact caches live below it. */
  readonly cacheDir: string
  readonly runtime: RuntimeProvider
  readonly image: ImageProvider
  readonly host: HostInfo
  readonly kubernetes: KubernetesInfo
  readonly nodes: NodeHandle[]
  readonly dryRun: boolean
  /** The base root filesystem; set by the host in prepare-image. */
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

/** What a running task may do with its line in the output (the part of listr2's task wrapper plugins use). */
export interface StageTaskWrapper {
  title: string | undefined
  /** The line shown under the task while it runs. */
  output: string | undefined
  /** Marks the task skipped, with a reason. */
  skip(message?: string): void
}

/** A task a plugin contributes to a stage (a listr2 task; the host prefixes its title with the plugin's name). */
export interface StageTask {
  title: string
  task: (ctx: StageContext, task: StageTaskWrapper) => void | Promise<void>
  /** A reason (string) or true to skip; false to run. Also shown by --dry-run. */
  skip?: boolean | string | ((ctx: StageContext) => boolean | string | Promise<boolean | string>)
  /** false leaves the task out here ("not enabled here" in --dry-run). */
  enabled?: boolean | ((ctx: StageContext) => boolean | Promise<boolean>)
}

/** The options of the kube-spawn:tasks hook. */
export interface TasksHookOptions {
  stage: Stage
  /** The context the tasks will run with (for deciding which tasks to return). */
  ctx: StageContext
}

/** The hooks kube-spawn runs: each event's options and what a handler returns. */
export interface KubeSpawnHooks {
  'kube-spawn:providers': {options: Record<never, never>; return: Provides}
  'kube-spawn:tasks': {options: TasksHookOptions; return: StageTask[]}
}

/**
 * The type of a hook handler, e.g. `export const tasks: KubeSpawnHook<'kube-spawn:tasks'> = async ({stage, ctx}) => [...]`.
 * oclif calls it with the options (plus oclif's own `config` and `context`, which plugins do not need).
 */
export type KubeSpawnHook<K extends keyof KubeSpawnHooks> = (
  options: KubeSpawnHooks[K]['options'] & {config?: unknown},
) => Promise<KubeSpawnHooks[K]['return']>
