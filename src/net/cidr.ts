/** IPv4 addresses and CIDR blocks, as plain numbers: enough for subnet allocation and overlap checks. */
export interface Cidr {
  readonly base: number
  readonly prefix: number
}

export function parseIPv4(text: string): number | undefined {
  const parts = text.split('.')
  if (parts.length !== 4) return undefined
  let value = 0
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part)) return undefined
    const octet = Number(part)
    if (octet > 255) return undefined
    value = value * 256 + octet
  }
  return value
}

export function formatIPv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.')
}

export function parseCidr(text: string): Cidr | undefined {
  const match = /^([\d.]+)\/(\d{1,2})$/.exec(text)
  if (!match) return undefined
  const address = parseIPv4(match[1])
  const prefix = Number(match[2])
  if (address === undefined || prefix > 32) return undefined
  const size = 2 ** (32 - prefix)
  if (address % size !== 0) return undefined
  return {base: address, prefix}
}

export function formatCidr(cidr: Cidr): string {
  return `${formatIPv4(cidr.base)}/${cidr.prefix}`
}

export function cidrSize(cidr: Cidr): number {
  return 2 ** (32 - cidr.prefix)
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return a.base < b.base + cidrSize(b) && b.base < a.base + cidrSize(a)
}

/** The `index`-th address of the block (0 is the network address). */
export function addressInCidr(cidr: Cidr, index: number): string {
  if (index < 0 || index >= cidrSize(cidr)) throw new RangeError(`address ${index} is outside ${formatCidr(cidr)}`)
  return formatIPv4(cidr.base + index)
}

/**
 * The first block of the given prefix length inside `range` that overlaps none of `taken`.
 * Returns undefined when the range is exhausted.
 */
export function allocateBlock(range: Cidr, prefix: number, taken: Cidr[]): Cidr | undefined {
  if (prefix < range.prefix) return undefined
  const size = 2 ** (32 - prefix)
  for (let base = range.base; base < range.base + cidrSize(range); base += size) {
    const candidate = {base, prefix}
    if (!taken.some((used) => cidrsOverlap(used, candidate))) return candidate
  }
  return undefined
}
