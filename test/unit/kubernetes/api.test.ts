/** The API client's credentials, read from kubeadm's admin.conf. */
import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {kubeconfigCredentials} from '../../../dist/kubernetes/api.js'

const b64 = (text: string) => Buffer.from(text).toString('base64')

/** An admin.conf as kubeadm init writes it: the client certificate embedded. */
const adminConf = `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: ${b64('the CA')}
    server: https://10.22.0.2:6443
  name: dev
contexts:
- context:
    cluster: dev
    user: kubernetes-admin
  name: kubernetes-admin@dev
current-context: kubernetes-admin@dev
kind: Config
preferences: {}
users:
- name: kubernetes-admin
  user:
    client-certificate-data: ${b64('the certificate')}
    client-key-data: ${b64('the key')}
`

describe('kubeconfigCredentials', () => {
  it("reads the server, the CA and the client's certificate and key of the current context", () => {
    assert.deepEqual(kubeconfigCredentials(adminConf), {
      server: 'https://10.22.0.2:6443',
      ca: 'the CA',
      cert: 'the certificate',
      key: 'the key',
    })
  })

  it('refuses a kubeconfig whose current context does not embed its credentials', () => {
    const files = adminConf
      .replace(/client-certificate-data: .*/, 'client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem')
      .replace(/client-key-data: .*/, 'client-key: /var/lib/kubelet/pki/kubelet-client-current.pem')
    assert.throws(() => kubeconfigCredentials(files), /no embedded client certificate/)
    assert.throws(() => kubeconfigCredentials(adminConf.replace(/current-context: .*/, 'current-context: other')), /names no server/)
  })
})
