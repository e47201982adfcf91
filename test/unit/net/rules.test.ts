import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {resolveDefinition} from '../../../dist/config/definition.js'
import {bridgeName, machineName, planMachines} from '../../../dist/node/names.js'
import {clusterRules, ruleComment} from '../../../dist/node/network.js'

const cluster = async (egress: boolean, extra: Record<string, unknown> = {}) => {
  const c = await resolveDefinition({'cluster-name': 'rules', network: {egress, 'cluster-subnet': '10.22.7.0/24'}, ...extra}, 'test')
  return {...c, machines: planMachines(c)}
}
const text = (rule: {table: string; chain: string; spec: string[]}) => `${rule.table} ${rule.chain} ${rule.spec.join(' ')}`

describe('clusterRules', () => {
  it('isolated: allows bridge-internal forwarding and drops everything leaving the bridge, with no NAT', async () => {
    const rules = clusterRules(await cluster(false)).map(text)
    assert.deepEqual(rules, [
      'filter FORWARD -i ks-rules -o ks-rules -m comment --comment kube-spawn:rules -j ACCEPT',
      'filter FORWARD -i ks-rules ! -o ks-rules -m comment --comment kube-spawn:rules -j DROP',
    ])
  })

  it('egress: NATs the cluster subnet out of other interfaces and lets replies back in', async () => {
    const rules = clusterRules(await cluster(true)).map(text)
    assert.ok(rules.includes('nat POSTROUTING -s 10.22.7.0/24 ! -o ks-rules -m comment --comment kube-spawn:rules -j MASQUERADE'))
    assert.ok(rules.some((r) => r.includes('--ctstate RELATED,ESTABLISHED')))
    assert.ok(!rules.some((r) => r.endsWith('-j DROP')))
  })

  it('tags every rule with the cluster comment, so that removal is exact', async () => {
    for (const egress of [true, false]) {
      for (const rule of clusterRules(await cluster(egress))) assert.ok(rule.spec.includes(ruleComment('rules')), text(rule))
    }
  })
})

describe('port mappings', () => {
  const mappings = {
    'port-mapping': [
      {'host-port': 8080, 'node-port': 30080},
      {'host-port': 5353, 'node-port': 30053, protocol: 'udp', node: 'cp'},
    ],
  }
  it('DNAT the host port to the node (the first worker unless named), before the isolated DROP', async () => {
    const rules = clusterRules(await cluster(false, mappings)).map(text)
    const tag = '-m comment --comment kube-spawn:rules'
    assert.deepEqual(rules.slice(0, 5), [
      `nat PREROUTING -p tcp -m addrtype --dst-type LOCAL --dport 8080 ${tag} -j DNAT --to-destination 10.22.7.3:30080`,
      `nat OUTPUT -p tcp -m addrtype --dst-type LOCAL --dport 8080 ${tag} -j DNAT --to-destination 10.22.7.3:30080`,
      `nat POSTROUTING -o ks-rules -d 10.22.7.3 -p tcp --dport 30080 -m conntrack --ctstate DNAT ${tag} -j MASQUERADE`,
      `filter FORWARD -o ks-rules -d 10.22.7.3 -p tcp --dport 30080 ${tag} -j ACCEPT`,
      `filter FORWARD -i ks-rules -s 10.22.7.3 -p tcp --sport 30080 -m conntrack --ctstate DNAT ${tag} -j ACCEPT`,
    ])
    assert.ok(rules[5].includes('--dport 5353') && rules[5].includes('10.22.7.2:30053'), rules[5])
    const drop = rules.findIndex((r) => r.endsWith('-j DROP'))
    assert.ok(drop > rules.findLastIndex((r) => r.includes('--ctstate DNAT')), 'the answers are let through before the DROP')
  })
  it('refuses a host port given twice and a node the cluster does not have, in one line', async () => {
    await assert.rejects(
      cluster(false, {
        'port-mapping': [
          {'host-port': 80, 'node-port': 30080},
          {'host-port': 80, 'node-port': 30081},
        ],
      }),
      /port-mapping host-port 80\/tcp is given twice/,
    )
    await assert.rejects(
      cluster(false, {nodes: 2, 'port-mapping': [{'host-port': 80, 'node-port': 30080, node: 'w5'}]}),
      /port-mapping host-port 80\/tcp names node "w5", which this cluster does not have/,
    )
  })
})

describe('names', () => {
  it('bridge names stay within 15 characters and differ for long cluster names sharing a prefix', () => {
    const a = bridgeName('a-very-long-cluster-name-one')
    const b = bridgeName('a-very-long-cluster-name-two')
    assert.ok(a.length <= 15 && b.length <= 15)
    assert.notEqual(a, b)
    assert.equal(bridgeName('dev'), 'ks-dev')
  })

  it('machines: control plane first, then workers, addresses after the host', async () => {
    const machines = (await cluster(false)).machines
    assert.deepEqual(
      machines.map((m) => [m.name, m.role, m.ip]),
      [
        [machineName('rules', 0), 'control-plane', '10.22.7.2'],
        ['ks-rules-w1', 'worker', '10.22.7.3'],
        ['ks-rules-w2', 'worker', '10.22.7.4'],
      ],
    )
  })
})
