import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {resolveDefinition} from '../../../dist/config/definition.js'
import type {Cluster} from '../../../dist/config/definition.js'
import {allocateClusterSubnet, allocatePodCidr} from '../../../dist/net/allocate.js'
import {parseCidr} from '../../../dist/net/cidr.js'
import type {Cidr} from '../../../dist/net/cidr.js'
import {UserError} from '../../../dist/errors.js'

const cluster = (name: string, network: Record<string, unknown> = {}): Promise<Cluster> =>
  resolveDefinition({'cluster-name': name, network}, 'test')
const block = (text: string): Cidr => parseCidr(text)!

describe('allocateClusterSubnet', () => {
  it('gives the first cluster the first /24 of network.subnet', async () => {
    assert.equal(allocateClusterSubnet(await cluster('a'), [], []), '10.22.0.0/24')
  })

  it('avoids the blocks of other clusters', async () => {
    const others = [await cluster('b', {'cluster-subnet': '10.22.0.0/24'}), await cluster('c', {'cluster-subnet': '10.22.1.0/24'})]
    assert.equal(allocateClusterSubnet(await cluster('a'), others, []), '10.22.2.0/24')
  })

  it("avoids the host's networks but ignores a default route (/0)", async () => {
    const host = [block('0.0.0.0/0'), block('10.22.0.0/24'), block('10.22.1.0/25'), block('192.168.1.0/24')]
    assert.equal(allocateClusterSubnet(await cluster('a'), [], host), '10.22.2.0/24')
  })

  it('allocates inside a custom network.subnet', async () => {
    const a = await cluster('a', {subnet: '172.30.0.0/16'})
    assert.equal(allocateClusterSubnet(a, [await cluster('b', {'cluster-subnet': '10.22.0.0/24'})], []), '172.30.0.0/24')
  })

  it('keeps a requested cluster-subnet that is free', async () => {
    assert.equal(allocateClusterSubnet(await cluster('a', {'cluster-subnet': '10.22.9.0/24'}), [], []), '10.22.9.0/24')
  })

  it('refuses a requested cluster-subnet that another cluster or the host uses', async () => {
    const a = await cluster('a', {'cluster-subnet': '10.22.9.0/24'})
    for (const [others, host] of [
      [[await cluster('b', {'cluster-subnet': '10.22.9.0/24'})], []],
      [[], [block('10.22.9.0/24')]],
    ] as Array<[Cluster[], Cidr[]]>) {
      assert.throws(
        () => allocateClusterSubnet(a, others, host),
        (error: unknown) => error instanceof UserError && /10\.22\.9\.0\/24 is already used/.test(error.message),
      )
    }
  })

  it('fails with a clear error when network.subnet is full', async () => {
    const a = await cluster('a', {subnet: '10.22.0.0/24'})
    const b = await cluster('b', {subnet: '10.22.0.0/24', 'cluster-subnet': '10.22.0.0/24'})
    assert.throws(
      () => allocateClusterSubnet(a, [b], []),
      (error: unknown) => error instanceof UserError && error.message === 'no free /24 left in network.subnet 10.22.0.0/24',
    )
  })
})

describe('allocatePodCidr', () => {
  it('keeps the pod CIDR when no other cluster uses it', async () => {
    assert.equal(allocatePodCidr(await cluster('a'), [await cluster('b', {'pod-cidr': '10.200.0.0/16'})]), '10.244.0.0/16')
  })

  it('moves a cluster left at the default to a free /16 when another cluster has the default', async () => {
    const others = [await cluster('b'), await cluster('c', {'pod-cidr': '10.240.0.0/16'})]
    assert.equal(allocatePodCidr(await cluster('a'), others), '10.241.0.0/16')
  })

  it('refuses a pod CIDR the user chose that overlaps another cluster', async () => {
    const others = [await cluster('b', {'pod-cidr': '10.200.0.0/16'})]
    assert.throws(
      () => allocatePodCidr({...(others[0] as Cluster), clusterName: 'a'} as Cluster, others),
      (e: unknown) => {
        return e instanceof UserError && /overlaps cluster "b"/.test(e.message)
      },
    )
  })
})
