/** The pod CIDR must give every node a /24; create checks it before anything is written. */
import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {checkPodCidrCapacity, nodePodCidr} from '../../../dist/net/pod-cidr.js'

const cluster = (podCidr: string, nodes = 3) => ({nodes, network: {podCidr}}) as Parameters<typeof checkPodCidrCapacity>[0]

describe('checkPodCidrCapacity', () => {
  it('accepts a pod CIDR with a /24 for every node', () => {
    checkPodCidrCapacity(cluster('10.244.0.0/16', 50))
    checkPodCidrCapacity(cluster('10.244.0.0/22', 4))
    checkPodCidrCapacity(cluster('10.244.0.0/24', 1))
  })

  it('refuses one without a /24 for every node', () => {
    assert.throws(() => checkPodCidrCapacity(cluster('10.244.0.0/22', 5)), {
      name: 'UserError',
      message: /holds 4 \/24 node ranges, but the cluster has 5 nodes/,
    })
  })

  it('refuses one that cannot be split into /24 ranges at all', () => {
    assert.throws(() => checkPodCidrCapacity(cluster('10.244.0.0/25', 1)), {name: 'UserError', message: /cannot be split into \/24/})
    assert.throws(() => checkPodCidrCapacity(cluster('10.0.0.0/7', 1)), {name: 'UserError', message: /cannot be split into \/24/})
  })
})

describe('nodePodCidr', () => {
  it('gives the nodes consecutive /24s of the pod CIDR, in node order', () => {
    assert.equal(nodePodCidr('10.244.0.0/16', 0), '10.244.0.0/24')
    assert.equal(nodePodCidr('10.244.0.0/16', 2), '10.244.2.0/24')
    assert.equal(nodePodCidr('10.244.0.0/16', 255), '10.244.255.0/24')
    assert.equal(nodePodCidr('172.16.8.0/22', 3), '172.16.11.0/24')
  })

  it('refuses an index beyond the pod CIDR', () => {
    assert.throws(() => nodePodCidr('10.244.0.0/22', 4), RangeError)
    assert.throws(() => nodePodCidr('10.244.0.0/16', -1), RangeError)
  })
})
