import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {addressInCidr, allocateBlock, cidrSize, cidrsOverlap, formatCidr, formatIPv4, parseCidr, parseIPv4} from '../../../dist/net/cidr.js'

const cidr = (text: string) => {
  const parsed = parseCidr(text)
  assert.ok(parsed, `${text} parses`)
  return parsed
}

describe('parseIPv4 / formatIPv4', () => {
  it('round-trips addresses', () => {
    for (const text of ['0.0.0.0', '10.22.0.1', '192.168.255.254', '255.255.255.255']) {
      assert.equal(formatIPv4(parseIPv4(text)!), text)
    }
    assert.equal(parseIPv4('10.0.0.1'), 10 * 2 ** 24 + 1)
  })

  it('rejects malformed addresses', () => {
    for (const text of ['', '10.0.0', '10.0.0.0.1', '256.0.0.1', '10.0.0.x', '10..0.1', '1234.0.0.1', ' 10.0.0.1']) {
      assert.equal(parseIPv4(text), undefined, text)
    }
  })
})

describe('parseCidr', () => {
  it('parses blocks with zero host bits', () => {
    assert.deepEqual(parseCidr('10.22.0.0/16'), {base: parseIPv4('10.22.0.0'), prefix: 16})
    assert.deepEqual(parseCidr('0.0.0.0/0'), {base: 0, prefix: 0})
    assert.deepEqual(parseCidr('10.22.5.7/32'), {base: parseIPv4('10.22.5.7'), prefix: 32})
    assert.equal(formatCidr(cidr('10.96.0.0/12')), '10.96.0.0/12')
  })

  it('rejects host bits, bad prefixes and garbage', () => {
    for (const text of [
      '10.22.0.1/16',
      '10.22.0.0/33',
      '10.22.0.0',
      '10.22.0.0/',
      '10.22.0.0/-1',
      'x/16',
      '10.22.0.0/16 ',
      '300.0.0.0/8',
    ]) {
      assert.equal(parseCidr(text), undefined, text)
    }
  })

  it('knows the size of a block and its addresses', () => {
    assert.equal(cidrSize(cidr('10.22.0.0/24')), 256)
    assert.equal(addressInCidr(cidr('10.22.3.0/24'), 0), '10.22.3.0')
    assert.equal(addressInCidr(cidr('10.22.3.0/24'), 2), '10.22.3.2')
    assert.throws(() => addressInCidr(cidr('10.22.3.0/24'), 256), RangeError)
    assert.throws(() => addressInCidr(cidr('10.22.3.0/24'), -1), RangeError)
  })
})

describe('cidrsOverlap', () => {
  const cases: Array<[string, string, boolean]> = [
    ['10.22.0.0/16', '10.22.5.0/24', true],
    ['10.22.5.0/24', '10.22.0.0/16', true],
    ['10.22.0.0/16', '10.22.0.0/16', true],
    ['10.22.0.0/16', '10.23.0.0/16', false],
    ['10.22.0.0/24', '10.22.1.0/24', false],
    ['10.0.0.0/8', '10.244.0.0/16', true],
    ['10.96.0.0/12', '10.244.0.0/16', false],
    ['10.96.0.0/12', '10.111.0.0/16', true],
    ['0.0.0.0/0', '192.168.1.0/24', true],
  ]
  for (const [a, b, expected] of cases) {
    it(`${a} ${expected ? 'overlaps' : 'does not overlap'} ${b}`, () => {
      assert.equal(cidrsOverlap(cidr(a), cidr(b)), expected)
    })
  }
})

describe('allocateBlock', () => {
  it('takes the first block of the range when nothing is taken', () => {
    assert.equal(formatCidr(allocateBlock(cidr('10.22.0.0/16'), 24, [])!), '10.22.0.0/24')
  })

  it('skips taken blocks, including larger and smaller ones that overlap', () => {
    const taken = [cidr('10.22.0.0/24'), cidr('10.22.1.128/25'), cidr('10.22.2.0/23')]
    assert.equal(formatCidr(allocateBlock(cidr('10.22.0.0/16'), 24, taken)!), '10.22.4.0/24')
  })

  it('ignores taken blocks outside the range', () => {
    assert.equal(formatCidr(allocateBlock(cidr('10.22.0.0/16'), 24, [cidr('10.23.0.0/16'), cidr('192.168.0.0/24')])!), '10.22.0.0/24')
  })

  it('returns undefined when the range is exhausted', () => {
    assert.equal(allocateBlock(cidr('10.22.0.0/23'), 24, [cidr('10.22.0.0/24'), cidr('10.22.1.0/24')]), undefined)
    assert.equal(allocateBlock(cidr('10.22.0.0/16'), 24, [cidr('10.0.0.0/8')]), undefined)
  })

  it('returns undefined when the block would be larger than the range', () => {
    assert.equal(allocateBlock(cidr('10.22.0.0/24'), 16, []), undefined)
  })

  it('returns the range itself when asked for a block of its own size', () => {
    assert.equal(formatCidr(allocateBlock(cidr('10.22.7.0/24'), 24, [])!), '10.22.7.0/24')
    assert.equal(allocateBlock(cidr('10.22.7.0/24'), 24, [cidr('10.22.7.1/32')]), undefined)
  })
})
