import {userError} from './errors.js'

/**
 * Typed access to a plugin's [plugin-config.<name>] table. A value of the wrong type is a user error
 * that names the table and the key, e.g. `[plugin-config.hello] greeting must be a string, not 3`.
 */
export interface PluginConfigReader {
  string(key: string): string | undefined
  string(key: string, fallback: string): string
  boolean(key: string): boolean | undefined
  boolean(key: string, fallback: boolean): boolean
  number(key: string): number | undefined
  number(key: string, fallback: number): number
  strings(key: string): string[]
  /** The keys present that are not in `known`: for a warning about typos. */
  unknownKeys(known: string[]): string[]
}

export function readPluginConfig(ctx: {pluginConfig(name: string): Record<string, unknown>}, name: string): PluginConfigReader {
  const table = ctx.pluginConfig(name)
  const bad = (key: string, what: string) =>
    userError(`[plugin-config.${name}] ${key} must be ${what}, not ${JSON.stringify(table[key])}`, {hint: 'fix the cluster definition'})
  const typed =
    <T>(kind: 'string' | 'boolean' | 'number', what: string) =>
    (key: string, fallback?: T): T | undefined => {
      const value = table[key]
      if (value === undefined) return fallback
      if (typeof value !== kind) throw bad(key, what)
      return value as T
    }
  return {
    string: typed<string>('string', 'a string') as PluginConfigReader['string'],
    boolean: typed<boolean>('boolean', 'true or false') as PluginConfigReader['boolean'],
    number: typed<number>('number', 'a number') as PluginConfigReader['number'],
    strings: (key) => {
      const value = table[key]
      if (value === undefined) return []
      if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw bad(key, 'an array of strings')
      return value as string[]
    },
    unknownKeys: (known) => Object.keys(table).filter((key) => !known.includes(key)),
  }
}
