/**
 * @kube-spawn/sdk: what a kube-spawn plugin is written against. The types describe the hooks, the
 * pipeline context and the providers (runtimes, images, workarounds); the few helpers are the ones
 * plugins need at run time. docs/plugins.md in the kube-spawn repository is the guide.
 *
 * Hooks (declare them in the plugin's package.json under oclif.hooks):
 *   kube-spawn:providers  → what the plugin provides: runtimes, images, workarounds
 *   kube-spawn:tasks      → tasks for one pipeline stage
 */
export * from './types.js'
export {API_VERSION, apiVersionFits} from './api.js'
export {type PluginConfigReader, readPluginConfig} from './config.js'
export {type KubeSpawnUserError, type UserErrorFields, isUserError, markUserError, userError} from './errors.js'
export {CNI_PLUGINS, NODE_COMMANDS, NODE_PATH, missingFromRoot, resolveInRoot} from './rootfs.js'
export {answerProblems} from './shapes.js'
export {WaitTimeout, type WaitOptions, waitFor} from './wait.js'
