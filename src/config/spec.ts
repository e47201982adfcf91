/**
 * The shape of kspawn.toml, declared once. The validator and the published JSON Schema
 * (docs/kspawn.schema.json) are both derived from this table, so they cannot drift apart.
 */
export type Spec =
  | {kind: 'boolean'; description: string; default?: boolean}
  | {kind: 'integer'; description: string; default?: number; min: number; max: number}
  | {kind: 'string'; description: string; default?: string; enum?: readonly string[]; examples?: string[]}
  | {kind: 'table'; description: string; fields: Record<string, Spec>; required?: string[]; freeForm?: boolean}
  | {kind: 'array'; description: string; items: Spec}
  /** A table of free keys (each matching `keys.pattern`) to values of one kind, e.g. feature gates. */
  | {kind: 'map'; description: string; keys: {pattern: string; means: string}; values: Spec}

const bindMount: Spec = {
  kind: 'table',
  description: 'A host directory mounted into every node (or one node, under [[machines]]).',
  fields: {
    src: {kind: 'string', description: 'Absolute host path. It must exist.'},
    dst: {kind: 'string', description: 'Absolute path inside the node.'},
  },
  required: ['src', 'dst'],
}

const bindMounts: Spec = {
  kind: 'table',
  description: 'Bind mounts, read-only and read-write.',
  fields: {
    'read-only': {kind: 'array', description: 'Mounted read-only.', items: bindMount},
    'read-write': {kind: 'array', description: 'Mounted read-write.', items: bindMount},
  },
}

export const MAX_NODES = 50

/** A component's extra command-line flags: name (without dashes) = "value". */
function extraArgs(component: string): Spec {
  return {
    kind: 'map',
    description: `Extra flags of ${component}, name = "value", after kube-spawn's own; the flags kube-spawn sets are refused.`,
    keys: {pattern: '^[a-z0-9][a-z0-9-]*$', means: 'a flag name without leading dashes, such as "v"'},
    values: {kind: 'string', description: "The flag's value."},
  }
}

export const definitionSpec: Spec & {kind: 'table'} = {
  kind: 'table',
  description: 'A kube-spawn cluster definition (kspawn.toml).',
  fields: {
    'cluster-name': {
      kind: 'string',
      description: 'Lower-case DNS-1123 label of at most 40 characters.',
      default: 'default',
      examples: ['default', 'dev'],
    },
    'container-runtime': {
      kind: 'string',
      description: 'The container runtime plugin that runs in every node.',
      default: 'containerd',
      examples: ['containerd'],
    },
    image: {kind: 'string', description: 'The base image plugin the nodes are built from.', default: 'debian'},
    'kubernetes-version': {
      kind: 'string',
      description: 'Kubernetes release, vMAJOR.MINOR.PATCH, v1.20.0 or newer.',
      default: 'v1.20.2',
      examples: ['v1.20.2'],
    },
    nodes: {
      kind: 'integer',
      description: 'Number of Kubernetes nodes: control-planes control planes, the rest workers.',
      default: 3,
      min: 1,
      max: MAX_NODES,
    },
    'control-planes': {
      kind: 'integer',
      description:
        'How many of the nodes are control planes: 1, or 3, 5 or 7 behind a load-balancer machine running haproxy (fixed at create).',
      default: 1,
      min: 1,
      max: 7,
    },
    token: {
      kind: 'string',
      description: 'kubeadm bootstrap token ([a-z0-9]{6}.[a-z0-9]{16}); generated when absent.',
      examples: ['abcdef.0123456789abcdef'],
    },
    cni: {
      kind: 'string',
      description: 'Pod network: "bridge" (built in, needs no images) or "none" (apply your own).',
      default: 'bridge',
      enum: ['bridge', 'none'],
    },
    kubernetes: {
      kind: 'table',
      description: 'Where the Kubernetes binaries and images come from, and how kubeadm configures the components.',
      fields: {
        source: {
          kind: 'string',
          description: 'Release base URL (https://…) or the absolute path of an offline bundle directory.',
          default: 'https://dl.k8s.io',
        },
        'feature-gates': {
          kind: 'map',
          description: 'Feature gates of the API server, controller manager, scheduler, kubelet and kube-proxy: Name = true|false.',
          keys: {pattern: '^[A-Z][A-Za-z0-9]*$', means: 'a feature gate name, as in SomeFeature = true'},
          values: {kind: 'boolean', description: 'Whether the gate is on.'},
        },
        'api-server-extra-args': extraArgs('kube-apiserver'),
        'controller-manager-extra-args': extraArgs('kube-controller-manager'),
        'scheduler-extra-args': extraArgs('kube-scheduler'),
        'kubelet-extra-args': extraArgs('the kubelet'),
        patches: {
          kind: 'string',
          description:
            "Absolute host directory of kubeadm patch files (target[suffix][+patchtype].yaml|json), given to kubeadm's --patches.",
        },
        'config-patches': {
          kind: 'array',
          description: 'YAML patches of the kubeadm config documents, each selecting one by kind (and apiVersion), merged in order.',
          items: {kind: 'string', description: 'A YAML map with kind, optionally apiVersion, and the fields to merge (null deletes).'},
        },
        'kube-proxy-mode': {
          kind: 'string',
          description: 'kube-proxy mode: iptables, nftables (Kubernetes 1.31 or newer), or none (no kube-proxy).',
          default: 'iptables',
          enum: ['iptables', 'nftables', 'none'],
        },
      },
    },
    network: {
      kind: 'table',
      description: 'Addresses of the nodes, pods and services.',
      fields: {
        subnet: {
          kind: 'string',
          description: 'Range from which each cluster takes its own /24 node block.',
          default: '10.22.0.0/16',
        },
        'cluster-subnet': {
          kind: 'string',
          description: "This cluster's /24 node block inside `subnet`; allocated when absent.",
        },
        'pod-cidr': {kind: 'string', description: 'Pod network.', default: '10.244.0.0/16'},
        'service-cidr': {kind: 'string', description: 'Service network.', default: '10.96.0.0/12'},
        egress: {
          kind: 'boolean',
          description: 'true: NAT to the outside and the host resolvers; false: isolated, nothing leaves the host.',
          default: true,
        },
      },
    },
    bindmount: bindMounts,
    'port-mapping': {
      kind: 'array',
      description: "Host ports forwarded to node ports, e.g. a NodePort or an ingress (kind's extraPortMappings).",
      items: {
        kind: 'table',
        description: 'One forwarded port.',
        fields: {
          'host-port': {kind: 'integer', description: "The port on the host's addresses (127.0.0.1 included).", min: 1, max: 65535},
          'node-port': {kind: 'integer', description: 'The port on the node.', min: 1, max: 65535},
          protocol: {kind: 'string', description: 'tcp or udp.', default: 'tcp', enum: ['tcp', 'udp']},
          node: {kind: 'string', description: 'Machine name or its short form (cp, w1); default: the first worker.'},
        },
        required: ['host-port', 'node-port'],
      },
    },
    registry: {
      kind: 'table',
      description:
        "The cluster's own image registry (Debian's docker-registry) on a machine of its own; every node's runtime pulls from it.",
      fields: {
        enabled: {kind: 'boolean', description: 'Run the registry (fixed at create).', default: false},
        port: {
          kind: 'integer',
          description: "The registry's port, on its machine and on the host's 127.0.0.1 (push to localhost:PORT).",
          default: 5000,
          min: 1,
          max: 65535,
        },
        dir: {
          kind: 'string',
          description: "Absolute host directory for the registry's storage, kept by destroy; default: inside the cluster directory.",
        },
      },
    },
    'runtime-config': {
      kind: 'table',
      description: 'Kubelet and timing settings.',
      fields: {
        'cgroup-per-qos': {kind: 'boolean', description: 'Kubelet cgroupsPerQOS.', default: true},
        'fail-swap-on': {kind: 'boolean', description: 'Kubelet failSwapOn.', default: false},
        timeout: {
          kind: 'string',
          description: 'How long start waits for the nodes to become Ready (for example 90s, 10m).',
          default: '10m',
        },
        'use-legacy-cgroup-driver': {
          kind: 'boolean',
          description: 'Use the cgroupfs cgroup driver (true) instead of systemd.',
          default: true,
        },
      },
    },
    'plugin-config': {
      kind: 'table',
      description: 'Settings for plugins, one table per plugin, for example [plugin-config.image-debian].',
      fields: {},
      freeForm: true,
    },
    machines: {
      kind: 'array',
      description: 'State written by kube-spawn: one entry per machine (the nodes, then the load balancer and the registry).',
      items: {
        kind: 'table',
        description: 'A node.',
        fields: {
          name: {kind: 'string', description: 'Machine name.'},
          role: {
            kind: 'string',
            description: 'control-plane, worker, load-balancer or registry.',
            enum: ['control-plane', 'worker', 'load-balancer', 'registry'],
          },
          ip: {kind: 'string', description: 'Static address on the cluster bridge.'},
          running: {kind: 'boolean', description: 'Whether the node was running when last seen.', default: false},
          bindmount: bindMounts,
        },
        required: ['name'],
      },
    },
    state: {
      kind: 'table',
      description: 'State written by kube-spawn.',
      fields: {
        initialized: {kind: 'boolean', description: 'kubeadm init and join have completed.', default: false},
      },
    },
  },
}

/** JSON Schema (draft 2020-12) for kspawn.toml, derived from the spec. */
export function toJsonSchema(spec: Spec = definitionSpec): Record<string, unknown> {
  const common = {description: spec.description}
  switch (spec.kind) {
    case 'boolean':
      return {...common, type: 'boolean', ...(spec.default === undefined ? {} : {default: spec.default})}
    case 'integer':
      return {...common, type: 'integer', minimum: spec.min, maximum: spec.max, default: spec.default}
    case 'string':
      return {
        ...common,
        type: 'string',
        ...(spec.enum ? {enum: spec.enum} : {}),
        ...(spec.default === undefined ? {} : {default: spec.default}),
        ...(spec.examples ? {examples: spec.examples} : {}),
      }
    case 'array':
      return {...common, type: 'array', items: toJsonSchema(spec.items)}
    case 'map':
      return {...common, type: 'object', propertyNames: {pattern: spec.keys.pattern}, additionalProperties: toJsonSchema(spec.values)}
    case 'table':
      return {
        ...common,
        type: 'object',
        properties: Object.fromEntries(Object.entries(spec.fields).map(([key, field]) => [key, toJsonSchema(field)])),
        ...(spec.required ? {required: spec.required} : {}),
        additionalProperties: spec.freeForm ? {type: 'object'} : false,
      }
  }
}

export function toRootJsonSchema(): Record<string, unknown> {
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://github.com/kube-spawn/kube-spawn/docs/kspawn.schema.json',
    title: 'kspawn.toml',
    ...toJsonSchema(definitionSpec),
  }
}

/** Checks a parsed TOML value against a spec; returns one message per problem, each naming the key path. */
export function checkAgainstSpec(value: unknown, spec: Spec, path: string): string[] {
  const where = path || 'the file'
  switch (spec.kind) {
    case 'boolean':
      return typeof value === 'boolean' ? [] : [`${where} must be true or false (got ${describe(value)})`]
    case 'integer':
      if (typeof value !== 'number' || !Number.isInteger(value)) {
        return [`${where} must be a whole number (got ${describe(value)})`]
      }
      return value < spec.min || value > spec.max
        ? [`${where} = ${value} is out of range; use a whole number from ${spec.min} to ${spec.max}`]
        : []
    case 'string':
      if (typeof value !== 'string') return [`${where} must be a string (got ${describe(value)})`]
      return spec.enum && !spec.enum.includes(value)
        ? [`${where} = "${value}" is not one of ${spec.enum.map((v) => `"${v}"`).join(', ')}`]
        : []
    case 'array':
      if (!Array.isArray(value)) return [`${where} must be an array of ${spec.items.kind}s (got ${describe(value)})`]
      return value.flatMap((item, index) => checkAgainstSpec(item, spec.items, `${path}[${index}]`))
    case 'map': {
      if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Date) {
        return [`${where} must be a table (got ${describe(value)})`]
      }
      const pattern = new RegExp(spec.keys.pattern)
      return Object.entries(value).flatMap(([key, child]) =>
        pattern.test(key)
          ? checkAgainstSpec(child, spec.values, `${where}.${key}`)
          : [`${where} has the entry ${JSON.stringify(key)}, which is not ${spec.keys.means} (names match ${spec.keys.pattern})`],
      )
    }
    case 'table': {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        return [`${where} must be a table (got ${describe(value)})`]
      }
      if (spec.freeForm) return []
      const missing = (spec.required ?? []).filter((key) => !(key in value))
      if (missing.length > 0) return [`${where} needs the key "${missing[0]}"`]
      return Object.entries(value).flatMap(([key, child]) => {
        const field = spec.fields[key]
        const childPath = path ? `${path}.${key}` : key
        if (!field) {
          const known = Object.keys(spec.fields).join(', ')
          return [`unknown key "${childPath}"; known keys${path ? ` in [${path}]` : ''}: ${known}`]
        }
        return checkAgainstSpec(child, field, childPath)
      })
    }
  }
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return 'an array'
  if (value === null || value === undefined) return 'nothing'
  if (typeof value === 'object') return value instanceof Date ? 'a date' : 'a table'
  return `${typeof value} ${JSON.stringify(value)}`
}

/** The default the spec declares at a dotted path (`network.pod-cidr`); the one place defaults live. */
export function specDefault(path: string): string | number | boolean | undefined {
  let spec: Spec = definitionSpec
  for (const key of path.split('.')) {
    if (spec.kind !== 'table' || !(key in spec.fields)) throw new Error(`no key ${path} in the definition spec`)
    spec = spec.fields[key]
  }
  return 'default' in spec ? spec.default : undefined
}

/**
 * The raw definition with every default of the spec filled in where a key is absent: in tables, and in
 * each table of an array (machines). Free-form tables (plugin-config) are left as they are.
 */
export function withDefaults(raw: Record<string, unknown>, spec: Spec & {kind: 'table'} = definitionSpec): Record<string, unknown> {
  const filled: Record<string, unknown> = {...raw}
  if (spec.freeForm) return filled
  for (const [key, field] of Object.entries(spec.fields)) {
    const value = filled[key]
    if (field.kind === 'table') filled[key] = withDefaults((value ?? {}) as Record<string, unknown>, field)
    else if (field.kind === 'array' && field.items.kind === 'table' && Array.isArray(value)) {
      const items = field.items
      filled[key] = value.map((item) => withDefaults(item as Record<string, unknown>, items))
    } else if (value === undefined && 'default' in field && field.default !== undefined) filled[key] = field.default
  }
  return filled
}
