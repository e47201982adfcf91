import {stringify} from 'yaml'

/** Plain data for a YAML document; undefined map values are left out. */
export type YamlScalar = string | number | boolean | null
export type YamlValue = YamlScalar | undefined | YamlValue[] | {[key: string]: YamlValue}

/**
 * The `yaml` package's output for kubeadm and the kubelet: block style, no line folding, sequences at
 * their key's indent, and strings quoted wherever YAML 1.1 would read them otherwise (kubeadm reads
 * YAML 1.1, where a cluster named "yes" or "on" would be a boolean).
 */
const OPTIONS = {compat: 'yaml-1.1', lineWidth: 0, indentSeq: false, doubleQuotedAsJSON: true, singleQuote: false} as const

/** YAML 1.1 line breaks that the yaml package (YAML 1.2) writes unescaped; no kube-spawn value holds one. */
const YAML_1_1_BREAKS = /[\u0085\u2028\u2029]/

/** Several documents, separated by `---`. */
export function renderYaml(documents: YamlValue[]): string {
  const refuseBreaks = (_key: unknown, value: unknown) => {
    if (typeof value === 'string' && YAML_1_1_BREAKS.test(value))
      throw new TypeError(`${JSON.stringify(value)} holds a YAML 1.1 line break`)
    return value
  }
  return documents.map((document) => stringify(document, refuseBreaks, OPTIONS)).join('---\n')
}
