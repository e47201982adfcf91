/**
 * The same end-to-end test as kubernetes.test.ts, with docker (runtime-docker, through the kubelet's
 * dockershim on the fixture's Kubernetes 1.20.2) as the nodes' runtime: cluster kst-<run>-doc.
 */
process.env.KST_E2E_RUNTIME = 'docker'
await import('./kubernetes.test.ts')
