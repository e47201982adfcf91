/**
 * The workaround-socat plugin on real nodes (issue 5: "kubectl port-forward needs socat in the node").
 *
 * What needs socat on this stack was checked first, and the answer shaped the plugin: nothing does.
 * kubelet v1.20 with a CRI runtime hands port-forward to the runtime's streaming server, and containerd
 * forwards in Go from inside the pod's network namespace since 1.4 (containerd/cri#1470; see
 * pkg/cri/server/sandbox_portforward_linux.go in 1.6). Only containerd before 1.4 and the kubelet's
 * dockershim ran socat. Debian bookworm ships containerd 1.6, so by default (mode "auto") the plugin
 * skips a no-socat image, saying why, and puts socat in only where the runtime runs it.
 *
 * So this test cannot show port-forward failing without the plugin, as the issue expected: it does not
 * fail. Uninstalling a core plugin is not possible either, so the last step removes the injected socat
 * from every node and shows that port-forward still works: the evidence for the finding above. The
 * injection itself is exercised with mode = "always" on an image built without socat, and checked by
 * running the injected socat in the nodes (its version, and a real HTTP request to the pod).
 *
 * Every cluster is isolated (egress = false) and takes Kubernetes from the offline bundle; the image
 * without socat is a second cached Debian image (built once, about 2 minutes). The CLI runs with a
 * private KUBECONFIG; the after hook destroys every cluster and sweeps with cleanup.sh, even on failure.
 *
 *   node --test --test-concurrency=1 --test-reporter=spec test/integration/socat.test.ts
 */
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {existsSync} from 'node:fs'
import {readFile, rm} from 'node:fs/promises'
import {join} from 'node:path'
import {after, before, describe, it, type TestContext} from 'node:test'

import {
  Cli,
  type CliResult,
  cleanupCluster,
  explain,
  fixtureBundle,
  isolatedDefinition,
  makeStateRoot,
  runProgram,
  seconds,
  uniqueClusterName,
  writeDefinition,
  log,
  CREATE_TIMEOUT,
  MINUTE,
} from './helpers.ts'

const START_TIMEOUT = 15 * MINUTE
const WEB_BODY = 'hello through port-forward'
const NO_SOCAT_IMAGE = `
[plugin-config.image-debian]
exclude-packages = ["socat"]
`
const TASK_TITLE = '[workaround-socat] Give nodes without socat a working one'
const WEB_POD = `apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
    - name: web
      image: docker.io/library/busybox:1.35
      imagePullPolicy: Never
      command: ["sh", "-c", "mkdir -p /www && echo '${WEB_BODY}' > /www/index.html && exec httpd -f -p 8080 -h /www"]
      ports:
        - containerPort: 8080
`

const output = (result: CliResult) => `${result.stdout}\n${result.stderr}`

describe(
  'workaround-socat: socat for port-forward on nodes whose image lacks it',
  {skip: process.getuid?.() !== 0 ? 'needs root' : false},
  () => {
    /** The main cluster: no socat in its image, and the plugin told to put it in (mode = "always"). */
    const main = uniqueClusterName('s')
    /** Create-only clusters whose start --dry-run shows the plugin's skip reasons. */
    const withSocat = uniqueClusterName('d')
    const auto = uniqueClusterName('a')
    const clusters = [main, withSocat, auto]
    let root = ''
    let bundle = ''
    let kubeconfig = ''
    let failed: string | undefined
    const cli = (name: string) => new Cli(root, name, {KUBECONFIG: kubeconfig})
    const machines = (name: string) => [`ks-${name}-cp`, `ks-${name}-w1`]

    /** A step of the sequence: skipped once an earlier one failed. */
    function step(name: string, timeout: number, body: (t: TestContext) => Promise<void>) {
      it(name, {timeout}, async (t) => {
        if (failed) return t.skip(`an earlier step failed: ${failed}`)
        try {
          await body(t)
        } catch (error) {
          failed ??= name
          throw error
        }
      })
    }

    async function create(name: string, extra: string): Promise<CliResult> {
      const config = await writeDefinition(root, isolatedDefinition({name, nodes: 2, bundle, extra}))
      const created = await cli(name).ok(['create', '--config', config], CREATE_TIMEOUT)
      log(`create ${name}: ${seconds(created.ms)}`)
      return created
    }

    /** The plan line of the plugin's task in `start --dry-run`. */
    async function planLine(name: string): Promise<string> {
      const plan = await cli(name).ok(['start', '--dry-run'], MINUTE)
      const line = plan.stdout.split('\n').find((l) => l.includes(TASK_TITLE))
      assert.ok(line, `start --dry-run shows the plugin's task:\n${plan.stdout}`)
      return line.trim()
    }

    function kubectl(args: string[], input?: string) {
      return runProgram(
        join(bundle, 'bin', 'kubectl'),
        [`--kubeconfig=${join(root, main, 'admin.conf')}`, '--request-timeout=20s', ...args],
        {
          timeoutMs: 4 * MINUTE,
          input,
        },
      )
    }

    /**
     * `kubectl port-forward pod/web :8080` from the host, then an HTTP GET to the local port it chose.
     * Returns the body, or throws with kubectl's output.
     */
    async function fetchThroughPortForward(): Promise<string> {
      const child = spawn(
        join(bundle, 'bin', 'kubectl'),
        [`--kubeconfig=${join(root, main, 'admin.conf')}`, 'port-forward', '--address', '127.0.0.1', 'pod/web', ':8080'],
        {stdio: ['ignore', 'pipe', 'pipe']},
      )
      let text = ''
      const exited = new Promise<void>((done) => child.on('close', () => done()))
      try {
        const port = await new Promise<number>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`port-forward did not start within 30 s:\n${text}`)), 30_000)
          const take = (chunk: Buffer) => {
            text += chunk
            const match = /Forwarding from 127\.0\.0\.1:(\d+) -> 8080/.exec(text)
            if (match) {
              clearTimeout(timer)
              resolve(Number(match[1]))
            }
          }
          child.stdout.on('data', take)
          child.stderr.on('data', take)
          child.on('close', (code) => {
            clearTimeout(timer)
            reject(new Error(`port-forward exited with ${code}:\n${text}`))
          })
        })
        const response = await fetch(`http://127.0.0.1:${port}/`, {signal: AbortSignal.timeout(20_000)}).catch((error: Error) => {
          throw new Error(`GET through port-forward failed: ${error.message}; kubectl said:\n${text}`)
        })
        assert.equal(response.status, 200, `GET through port-forward: HTTP ${response.status}; kubectl said:\n${text}`)
        return (await response.text()).trim()
      } finally {
        child.kill('SIGTERM')
        await exited
      }
    }

    before(
      async () => {
        bundle = await fixtureBundle()
        root = await makeStateRoot('socat')
        kubeconfig = join(root, 'kubeconfig')
      },
      {timeout: 15 * MINUTE},
    )

    after(
      async () => {
        if (!root) return
        for (const name of clusters) {
          if (!existsSync(join(root, name, 'kspawn.toml'))) continue
          const destroyed = await cli(name).run(['destroy'], 5 * MINUTE)
          if (destroyed.code !== 0) log(explain(`after: destroy ${name}`, destroyed))
        }
        for (const name of clusters) {
          const swept = await cleanupCluster(name, root)
          if (swept.trim()) log(`cleanup after ${name}:\n${swept.trim()}`)
        }
        await rm(root, {recursive: true, force: true}).catch(() => undefined)
      },
      {timeout: 10 * MINUTE},
    )

    step('skips where the node image has socat', CREATE_TIMEOUT, async () => {
      await create(withSocat, '')
      assert.equal(await planLine(withSocat), `${TASK_TITLE}  (skipped: socat is in the node image)`)
      await cli(withSocat).ok(['destroy'], 5 * MINUTE)
    })

    step('by default (mode "auto") skips an image without socat: containerd 1.6 forwards ports itself', CREATE_TIMEOUT, async () => {
      await create(auto, NO_SOCAT_IMAGE)
      assert.match(
        await planLine(auto),
        /\(skipped: containerd \d+\.\d+\.\d+ forwards ports itself \(without socat since 1\.4\), so nothing in the node runs socat\)$/,
      )
      await cli(auto).ok(['destroy'], 5 * MINUTE)
    })

    step(
      'with mode = "always", start puts the host socat into both nodes of a no-socat image',
      START_TIMEOUT + CREATE_TIMEOUT,
      async () => {
        await create(main, `${NO_SOCAT_IMAGE}\n[plugin-config.workaround-socat]\nmode = "always"\n`)
        const base = JSON.parse(await readFile(join(root, main, 'base-image.json'), 'utf8')) as {rootfs: string}
        assert.ok(!existsSync(join(base.rootfs, 'usr/bin/socat')), `the base image ${base.rootfs} has no socat`)

        const started = await cli(main).ok(['start'], START_TIMEOUT)
        log(`start ${main} (kubeadm init + join, 2 nodes): ${seconds(started.ms)}`)
        assert.match(output(started), /\[workaround-socat\] Put \/usr\/bin\/socat \(\d+ libraries\) into ks-\S+-cp, ks-\S+-w1: /)
      },
    )

    step('the injected socat runs in every node, through its own libraries', 2 * MINUTE, async () => {
      for (const machine of machines(main)) {
        const found = await cli(main).exec(machine, ['sh', '-c', 'command -v socat; test ! -e /usr/bin/socat && socat -V'])
        assert.equal(found.code, 0, explain(`socat -V in ${machine}`, found))
        assert.match(found.stdout, /^\/usr\/local\/bin\/socat\n/)
        assert.match(found.stdout, /socat version \d/)
      }
    })

    step('kubectl port-forward from the host reaches a busybox httpd pod', 5 * MINUTE, async (t) => {
      const applied = await kubectl(['apply', '-f', '-'], WEB_POD)
      assert.equal(applied.code, 0, explain('kubectl apply', applied))
      const ready = await kubectl(['wait', '--for=condition=Ready', 'pod/web', '--timeout=180s'])
      assert.equal(ready.code, 0, explain('kubectl wait pod/web', ready))
      const started = Date.now()
      assert.equal(await fetchThroughPortForward(), WEB_BODY)
      t.diagnostic(`port-forward + GET: ${seconds(Date.now() - started)}`)

      // The injected socat carries real traffic too: an HTTP request from a node to the pod.
      const ip = await kubectl(['get', 'pod', 'web', '-o', 'jsonpath={.status.podIP}'])
      assert.equal(ip.code, 0, explain('kubectl get pod web', ip))
      const request = `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | socat -t 5 - TCP4:${ip.stdout.trim()}:8080`
      const viaSocat = await cli(main).exec(machines(main)[0], ['sh', '-c', request])
      assert.equal(viaSocat.code, 0, explain('socat to the pod', viaSocat))
      assert.match(viaSocat.stdout, /^HTTP\/1\.[01] 200 /)
      assert.ok(viaSocat.stdout.includes(WEB_BODY), `the pod's page through socat:\n${viaSocat.stdout}`)
    })

    step('port-forward still works with socat removed from every node: containerd 1.6 never runs it', 5 * MINUTE, async () => {
      // The issue expected this to fail. It does not: containerd's CRI plugin dials the pod's port from Go
      // inside the pod's network namespace. This is the evidence behind the plugin's "auto" mode.
      for (const machine of machines(main)) {
        const removed = await cli(main).exec(machine, ['rm', '/usr/local/bin/socat'])
        assert.equal(removed.code, 0, explain(`rm socat in ${machine}`, removed))
        const gone = await cli(main).exec(machine, ['sh', '-c', 'command -v socat'])
        assert.notEqual(gone.code, 0, `${machine} still finds a socat: ${gone.stdout}`)
      }
      assert.equal(await fetchThroughPortForward(), WEB_BODY)
    })
  },
)
