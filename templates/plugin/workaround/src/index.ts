/**
 * kube-spawn-plugin-__NAME__: a kube-spawn workaround plugin.
 *
 * - kube-spawn:providers → names what the plugin adds (listed by `kube-spawn providers`).
 * - kube-spawn:tasks     → a settings check in preflight, and in post-boot a task that makes every
 *                          node write /etc/kube-spawn-__NAME__.
 *
 * Settings come from the cluster definition (kspawn.toml):
 *
 *     [plugin-config.__NAME__]
 *     enabled = false          # skip this plugin's tasks for this cluster (default: true)
 *
 * Everything about the cluster arrives in the hook options and the task context. From
 * '@kube-spawn/sdk' come the types and one helper, readPluginConfig; the SDK is the package's only
 * dependency, bundled into its tarball (bundleDependencies) so that installing it needs no registry.
 */
import {type KubeSpawnHook, type StageContext, type StageTask, readPluginConfig} from '@kube-spawn/sdk'

/** The plugin's short name: its package name without "kube-spawn-plugin-". Task titles show it as [__NAME__]. */
export const NAME = '__NAME__'

export const HELLO_FILE = `/etc/kube-spawn-${NAME}`

/** What every node runs in post-boot. */
export const HELLO_COMMAND = ['sh', '-c', `echo hello from $(hostname) > ${HELLO_FILE}`]

export const DISABLED = `disabled by [plugin-config.${NAME}] enabled = false`

const KNOWN_KEYS = ['enabled']

/**
 * Why this plugin's tasks do not run for the cluster, or false. It only reads the context: kube-spawn
 * also calls skip() for --dry-run, so it must have no side effects (and must not throw: a wrong type
 * is reported by the preflight check).
 */
export function skipReason(ctx: Pick<StageContext, 'pluginConfig'>): string | false {
  return ctx.pluginConfig(NAME).enabled === false ? DISABLED : false
}

/** Checks [plugin-config.__NAME__]: a wrong type fails the command, an unknown key is a warning. */
export function checkSettings(ctx: Pick<StageContext, 'pluginConfig' | 'warn'>): void {
  const settings = readPluginConfig(ctx, NAME)
  settings.boolean('enabled')
  for (const key of settings.unknownKeys(KNOWN_KEYS)) {
    ctx.warn(`[plugin-config.${NAME}] ${key} is not a setting of kube-spawn-plugin-${NAME}; it is ignored`)
  }
}

const preflightTasks: StageTask[] = [
  {
    title: `Check the ${NAME} settings`,
    skip: (ctx) => skipReason(ctx),
    task: async (ctx) => checkSettings(ctx),
  },
]

const postBootTasks: StageTask[] = [
  {
    title: 'Say hello from every node',
    skip: (ctx) => skipReason(ctx),
    task: async (ctx, task) => {
      await Promise.all(ctx.nodes.map((node) => node.exec(HELLO_COMMAND, {timeoutMs: 30_000 * ctx.host.timeoutScale})))
      task.output = `wrote ${HELLO_FILE} in ${ctx.nodes.map((n) => n.name).join(', ')}`
    },
  },
]

export const providers: KubeSpawnHook<'kube-spawn:providers'> = async () => ({
  workarounds: [{name: NAME, description: `Example plugin: every node writes ${HELLO_FILE} after it boots`}],
})

/**
 * Called once per stage of every pipeline (also for --dry-run). It only decides which tasks to return,
 * and quickly: kube-spawn gives a hook 30 s. The work itself belongs in the tasks.
 */
export const tasks: KubeSpawnHook<'kube-spawn:tasks'> = async ({stage}) => {
  switch (stage) {
    case 'preflight':
      return preflightTasks
    case 'post-boot':
      return postBootTasks
    default:
      return []
  }
}
