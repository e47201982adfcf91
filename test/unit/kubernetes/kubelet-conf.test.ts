/** The control plane's kubelet.conf after init, the API client's credentials, and the images each role imports. */
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {parse} from 'yaml'

import {fixtureBinary} from '../helpers/fixture-bundle.ts'

import {kubeconfigCredentials} from '../../../dist/kubernetes/api.js'
import {imagesForRole} from '../../../dist/kubernetes/binaries.js'
import {KUBELET_ROTATED_CERTIFICATE, kubeletConfWithRotatedCertificate} from '../../../dist/kubernetes/kubeadm-config.js'

const b64 = (text: string) => Buffer.from(text).toString('base64')

/** A kubelet.conf as kubeadm init writes it: the first client certificate embedded. */
const kubeletConf = `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: ${b64('the CA')}
    server: https://10.22.0.2:6443
  name: dev
contexts:
- context:
    cluster: dev
    user: system:node:ks-dev-cp
  name: system:node:ks-dev-cp@dev
current-context: system:node:ks-dev-cp@dev
kind: Config
preferences: {}
users:
- name: system:node:ks-dev-cp
  user:
    client-certificate-data: ${b64('the certificate')}
    client-key-data: ${b64('the key')}
`

describe('kubeletConfWithRotatedCertificate', () => {
  it('names the rotated certificate file instead of the embedded certificate, and keeps the rest', () => {
    const updated = parse(kubeletConfWithRotatedCertificate(kubeletConf))
    const original = parse(kubeletConf)
    assert.deepEqual(updated.users, [
      {name: 'system:node:ks-dev-cp', user: {'client-certificate': KUBELET_ROTATED_CERTIFICATE, 'client-key': KUBELET_ROTATED_CERTIFICATE}},
    ])
    assert.deepEqual({...updated, users: undefined}, {...original, users: undefined})
    assert.equal(KUBELET_ROTATED_CERTIFICATE, '/var/lib/kubelet/pki/kubelet-client-current.pem')
  })

  it('leaves a kubelet.conf that names files already as it is', () => {
    const once = kubeletConfWithRotatedCertificate(kubeletConf)
    assert.equal(kubeletConfWithRotatedCertificate(once), once)
  })

  const kubectl = fixtureBinary('kubectl')
  it(
    'writes a kubeconfig kubectl reads, with the file as the client certificate',
    {skip: kubectl === undefined && 'no fixture kubectl'},
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'kubelet-conf-'))
      try {
        await writeFile(join(dir, 'kubelet.conf'), kubeletConfWithRotatedCertificate(kubeletConf))
        const view = execFileSync(
          kubectl!,
          ['config', 'view', `--kubeconfig=${join(dir, 'kubelet.conf')}`, '-o', 'jsonpath={.users[0].user}'],
          {
            encoding: 'utf8',
          },
        )
        assert.deepEqual(JSON.parse(view), {'client-certificate': KUBELET_ROTATED_CERTIFICATE, 'client-key': KUBELET_ROTATED_CERTIFICATE})
      } finally {
        await rm(dir, {recursive: true, force: true})
      }
    },
  )
})

describe('kubeconfigCredentials', () => {
  const adminConf = kubeletConf.replaceAll('system:node:ks-dev-cp', 'kubernetes-admin')

  it("reads the server, the CA and the client's certificate and key of the current context", () => {
    assert.deepEqual(kubeconfigCredentials(adminConf), {
      server: 'https://10.22.0.2:6443',
      ca: 'the CA',
      cert: 'the certificate',
      key: 'the key',
    })
  })

  it('refuses a kubeconfig whose current context does not embed its credentials', () => {
    assert.throws(() => kubeconfigCredentials(kubeletConfWithRotatedCertificate(adminConf)), /no embedded client certificate/)
    assert.throws(() => kubeconfigCredentials(adminConf.replace(/current-context: .*/, 'current-context: other')), /names no server/)
  })
})

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
