/** kube-spawn's etcd patch and seccomp profile, which make etcd's write-ahead log sparse. */
import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {parse} from 'yaml'

import {ETCD_PATCH_FILE, ETCD_SECCOMP_PROFILE, builtInPatches, etcdPatch, etcdSeccompProfile} from '../../../dist/kubernetes/etcd.js'

describe('etcd patch', () => {
  it('puts the etcd pod under the profile, by its path below the seccomp root', () => {
    assert.equal(ETCD_PATCH_FILE, 'etcd+strategic.yaml', "kubeadm's file name: the target, then the patch type")
    assert.deepEqual(parse(etcdPatch), {
      spec: {securityContext: {seccompProfile: {type: 'Localhost', localhostProfile: ETCD_SECCOMP_PROFILE}}},
    })
    assert.doesNotMatch(ETCD_SECCOMP_PROFILE, /^\/|\.\./, 'the kubelet takes only a path that descends from its root')
  })

  it('answers only fallocate, with EOPNOTSUPP, and allows the rest', () => {
    assert.deepEqual(JSON.parse(etcdSeccompProfile), {
      defaultAction: 'SCMP_ACT_ALLOW',
      syscalls: [{names: ['fallocate'], action: 'SCMP_ACT_ERRNO', errnoRet: 95}],
    })
  })

  it("is left out when the user's kubernetes.patches patch etcd themselves", () => {
    const fast = {slowHost: false}
    assert.deepEqual(builtInPatches([], fast), [{name: ETCD_PATCH_FILE, content: etcdPatch}])
    assert.deepEqual(builtInPatches(['kube-apiserver+json.json', 'kube-scheduler.yaml'], fast).length, 1)
    for (const theirs of ['etcd.yaml', 'etcd+merge.yaml', 'etcd0+strategic.yml', 'etcd1+json.json'])
      assert.deepEqual(builtInPatches(['kube-apiserver.yaml', theirs], fast), [], theirs)
  })

  it('is left out on a slow host (scaled waits: an emulated CPU), where the log stays preallocated', () => {
    assert.deepEqual(builtInPatches([], {slowHost: true}), [])
  })
})
