/** Which of the bundle's image archives each role imports. */
import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {imagesForRole} from '../../../dist/kubernetes/binaries.js'

describe('imagesForRole', () => {
  const bundle = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kube-proxy', 'pause', 'busybox'].map(
    (name) => `/cache/bundle/images/${name}.tar`,
  )

  it("gives a control plane every image, a worker all but the control plane's static pods", () => {
    assert.deepEqual(imagesForRole(bundle, 'control-plane'), bundle)
    assert.deepEqual(
      imagesForRole(bundle, 'worker').map((i) => i.split('/').at(-1)),
      ['kube-proxy.tar', 'pause.tar', 'busybox.tar'],
    )
  })

  it('knows the archives by their name with a suffix, and keeps one whose name only begins like them', () => {
    const images = ['/b/images/etcdctl-tools.tar', '/b/images/kube-apiserver-amd64.tar', '/b/images/kube-scheduler.v1.31.tar']
    assert.deepEqual(imagesForRole(images, 'worker'), ['/b/images/etcdctl-tools.tar'])
  })
})
