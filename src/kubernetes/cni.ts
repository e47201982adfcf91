/** The bridge CNI configuration of a node (cni = "bridge"). */
import {parseCidr} from '../net/cidr.js'

export const CNI_CONFLIST_PATH = '/etc/cni/net.d/10-kube-spawn.conflist'

/**
 * A node's CNI config: the bridge plugin on cni0 as the pods' gateway, host-local addresses from the
 * node's own pod range, and portmap for hostPort. No masquerading: pod traffic to other nodes keeps
 * its source address (nodes route each other's pod ranges). cniVersion 0.4.0 is understood by
 * Debian's containernetworking-plugins 1.1 and every supported kubelet's runtime.
 */
export function renderCniConflist(podCidr: string): string {
  if (!parseCidr(podCidr)) throw new TypeError(`node pod CIDR "${podCidr}" is not an IPv4 CIDR block`)
  const conflist = {
    cniVersion: '0.4.0',
    name: 'kube-spawn',
    plugins: [
      {
        type: 'bridge',
        bridge: 'cni0',
        isGateway: true,
        ipMasq: false,
        hairpinMode: true,
        ipam: {type: 'host-local', ranges: [[{subnet: podCidr}]], routes: [{dst: '0.0.0.0/0'}]},
      },
      {type: 'portmap', capabilities: {portMappings: true}},
    ],
  }
  return `${JSON.stringify(conflist, null, 2)}\n`
}
