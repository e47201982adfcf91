/**
 * kube-spawn-plugin-hello: a minimal third-party kube-spawn plugin.
 *
 * - kube-spawn:providers → names what the plugin adds (listed by `kube-spawn providers`).
 * - kube-spawn:tasks     → a settings check in preflight, and in post-boot a task that makes every
 *                          node write /etc/kube-spawn-hello.
 *
 * Settings come from the cluster definition (kspawn.toml):
 *
 *     [plugin-config.hello]
 *     enabled = false          # skip this plugin's tasks for this cluster (default: true)
 *
 * Only types are imported from '@kube-spawn/sdk': at run time everything arrives in the hook options
 * and the task context, so the package has no run-time dependencies at all.
 */
import type {KubeSpawnHook, StageContext, StageTask} from '@kube-spawn/sdk'

/** The plugin's short name: its package name without "kube-spawn-plugin-". Task titles show it as [hello]. */
export const NAME = 'hello'

export const HELLO_FILE = '/etc/kube-spawn-hello'

/** What every node runs in post-boot. */
export const HELLO_COMMAND = ['sh', '-c', `echo hello from $(hostname) > ${HELLO_FILE}`]

export const DISABLED = `disabled by [plugin-config.${NAME}] enabled = false`

const KNOWN_KEYS = new Set(['enabled'])

/**
 * Why this plugin's tasks do not run for the cluster, or false. It only reads the context: kube-spawn
 * also calls skip() for --dry-run, so it must have no side effects.
 */
export function skipReason(ctx: Pick<StageContext, 'pluginConfig'>): string | false {
  return ctx.pluginConfig(NAME).enabled === false ? DISABLED : false
}

/** Checks [plugin-config.hello]: a wrong type fails the command, an unknown key is a warning. */
export function checkSettings(ctx: Pick<StageContext, 'pluginConfig' | 'warn'>): void {
  const settings = ctx.pluginConfig(NAME)
  if (settings.enabled !== undefined && typeof settings.enabled !== 'boolean') {
    throw new Error(`[plugin-config.${NAME}] enabled must be true or false, not ${JSON.stringify(settings.enabled)}`)
  }
  for (const key of Object.keys(settings).filter((k) => !KNOWN_KEYS.has(k))) {
    ctx.warn(`[plugin-config.${NAME}] ${key} is not a setting of kube-spawn-plugin-${NAME}; it is ignored`)
  }
}

const preflightTasks: StageTask[] = [
  {
    title: 'Check the hello settings',
    skip: (ctx) => skipReason(ctx),
    task: async (ctx) => checkSettings(ctx),
  },
]

const postBootTasks: StageTask[] = [
  {
    title: 'Say hello from every node',
    skip: (ctx) => skipReason(ctx),
    task: async (ctx, task) => {
      await Promise.all(ctx.nodes.map((node) => node.exec(HELLO_COMMAND, {timeoutMs: 30_000})))
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
