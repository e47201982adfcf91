/**
 * Checks of what plugins hand the host against the types of this package, at run time, because a
 * plugin may be plain JavaScript. Each problem is a short phrase that names the field.
 */
import type {KubeSpawnHooks} from './types.js'

type Check = (value: unknown) => boolean
const isString: Check = (v) => typeof v === 'string' && v !== ''
const isFunction: Check = (v) => typeof v === 'function'
const isStringArray: Check = (v) => Array.isArray(v) && v.every((s) => typeof s === 'string')
const isNonEmptyStringArray: Check = (v) => isStringArray(v) && (v as unknown[]).length > 0
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
const optional =
  (check: Check): Check =>
  (v) =>
    v === undefined || check(v)
const oneOf =
  (...checks: Check[]): Check =>
  (v) =>
    checks.some((check) => check(v))

type Fields = Record<string, [Check, string]>

const aptSource: Check = (v) =>
  isObject(v) &&
  isString(v.name) &&
  isString(v.entry) &&
  isObject(v.key) &&
  (isString(v.key.content) || (isString(v.key.url) && (isString(v.key.sha256) || /^[0-9A-Fa-f]{40}$/.test(String(v.key.fingerprint)))))
const runtimePackages: Check = (v) =>
  isObject(v) &&
  Object.values(v).every(
    (p) => isObject(p) && isStringArray(p.names) && optional((s) => Array.isArray(s) && s.every(aptSource))(p.aptSources),
  )
const runtimeFile: Check = (v) =>
  isObject(v) &&
  isString(v.path) &&
  (v.path as string).startsWith('/') &&
  optional((m) => typeof m === 'number')(v.mode) &&
  (typeof v.content === 'string' ||
    isFunction(v.content) ||
    (isString(v.url) &&
      /^[0-9a-f]{64}$/.test(String(v.sha256)) &&
      optional((m) => isString(m) && !String(m).startsWith('/') && !String(m).split('/').includes('..'))(v.extract)))

const RUNTIME: Fields = {
  name: [isString, 'a string'],
  description: [isString, 'a string'],
  packages: [runtimePackages, 'an object of image family → {names: string[], aptSources?}'],
  files: [
    optional((v) => Array.isArray(v) && v.every(runtimeFile)),
    'an array of {path, content} or {path, url, sha256, extract?: a relative member path}',
  ],
  commands: [isStringArray, 'an array of strings'],
  dataDirs: [isStringArray, 'an array of strings'],
  criSocket: [isString, 'a string'],
  cgroupDrivers: [
    (v) => isNonEmptyStringArray(v) && (v as string[]).every((d) => d === 'systemd' || d === 'cgroupfs'),
    '"systemd" and/or "cgroupfs"',
  ],
  cniBinDir: [isString, 'a string'],
  imageImportCommand: [isNonEmptyStringArray, 'a non-empty array of strings'],
  imageStore: [
    optional(
      (v) =>
        isObject(v) &&
        isString(v.dir) &&
        String(v.dir).startsWith('/') &&
        [v.rewrittenFiles, v.instanceFiles ?? []].every(
          (files) =>
            isStringArray(files) && (files as string[]).every((f) => f !== '' && !f.startsWith('/') && !f.split('/').includes('..')),
        ),
    ),
    '{dir: an absolute path, rewrittenFiles and instanceFiles?: relative paths below it}',
  ],
  services: [isNonEmptyStringArray, 'a non-empty array of strings'],
  readinessCommand: [isNonEmptyStringArray, 'a non-empty array of strings'],
  stopContainersCommand: [optional(isNonEmptyStringArray), 'a non-empty array of strings'],
  needsSocat: [
    oneOf(
      (v) => typeof v === 'boolean',
      (v) => isObject(v) && isString(v.package) && isString(v.belowVersion),
    ),
    'a boolean or {package, belowVersion}',
  ],
  supports: [optional(isObject), 'an object'],
  kubelet: [optional((v) => v === 'cri' || v === 'dockershim'), '"cri" or "dockershim"'],
  variant: [optional(isFunction), 'a function'],
  refuse: [optional(isFunction), 'a function'],
}

const IMAGE: Fields = {
  name: [isString, 'a string'],
  description: [isString, 'a string'],
  family: [isString, 'a string'],
  key: [isFunction, 'a function'],
  refuse: [optional(isFunction), 'a function'],
  hostCommands: [optional(isStringArray), 'an array of strings'],
  build: [optional(isFunction), 'a function'],
  fetch: [optional(isFunction), 'a function'],
}

const WORKAROUND: Fields = {
  name: [isString, 'a string'],
  description: [isString, 'a string'],
}

function fieldProblems(value: unknown, fields: Fields, what: string): string[] {
  if (!isObject(value)) return [`${what} is not an object`]
  const label = isString(value.name) ? `${what} "${value.name as string}"` : what
  return Object.entries(fields)
    .filter(([key, [check]]) => !check(value[key]))
    .map(([key, [, expected]]) => `${label}: ${key} must be ${expected}${value[key] === undefined ? ' (it is missing)' : ''}`)
}

function providersProblems(result: unknown): string[] {
  if (!isObject(result)) return [`the result must be an object {runtimes?, images?, workarounds?}, not ${describe(result)}`]
  const problems: string[] = []
  for (const [key, fields, what] of [
    ['runtimes', RUNTIME, 'runtime'],
    ['images', IMAGE, 'image'],
    ['workarounds', WORKAROUND, 'workaround'],
  ] as const) {
    const list = result[key]
    if (list === undefined) continue
    if (!Array.isArray(list)) problems.push(`${key} must be an array, not ${describe(list)}`)
    else list.forEach((item, i) => problems.push(...fieldProblems(item, fields, `${what} ${i + 1}`)))
    if (key === 'images' && Array.isArray(list))
      for (const image of list)
        if (isObject(image) && !image.build && !image.fetch) problems.push(`image "${String(image.name)}": it needs build or fetch`)
  }
  return problems
}

function tasksProblems(result: unknown): string[] {
  if (!Array.isArray(result)) return [`the result must be an array of tasks, not ${describe(result)}`]
  return result.flatMap((task, i) => {
    if (!isObject(task)) return [`task ${i + 1} is not an object`]
    const label = isString(task.title) ? `task "${task.title as string}"` : `task ${i + 1}`
    const problems: string[] = []
    if (!isString(task.title)) problems.push(`${label}: title must be a string`)
    if (!isFunction(task.task)) problems.push(`${label}: task must be a function`)
    if (!['undefined', 'boolean', 'string', 'function'].includes(typeof task.skip))
      problems.push(`${label}: skip must be a boolean, string or function`)
    if (!['undefined', 'boolean', 'function'].includes(typeof task.enabled))
      problems.push(`${label}: enabled must be a boolean or function`)
    return problems
  })
}

/** What is wrong with a hook's result, as phrases; empty when it fits the hook's type. */
export function answerProblems(event: keyof KubeSpawnHooks, result: unknown): string[] {
  return event === 'kube-spawn:providers' ? providersProblems(result) : tasksProblems(result)
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return String(value)
  if (Array.isArray(value)) return 'an array'
  return typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)}`
}
