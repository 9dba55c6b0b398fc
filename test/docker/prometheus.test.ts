import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dashboardText, panels } from '../../scripts/write-grafana-dashboard.js';
import { startFakeWorker, type FakeWorker } from '../support/fake-worker.js';
import { freePort } from '../support/free-port.js';
import { startGateway, until, type TestGateway } from '../support/gateway.js';

/**
 * docker/prometheus.yml and the Grafana dashboard, run for real: Debian's Prometheus on loopback scrapes two
 * gateways with the file's own scrape job (only the targets put on loopback and the interval shortened), and
 * every query of the dashboard is answered by it, over series the gateways really expose.
 */
const root = fileURLToPath(new URL('../..', import.meta.url));
let worker: FakeWorker;
const gateways: TestGateway[] = [];
const targets: string[] = [];
let prometheus: ChildProcess;
let prometheusOutput = '';
let prometheusUrl: string;
let dataDir: string;

function run(command: string, args: readonly string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd: root, timeout: 30_000 }, (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, output: stdout + stderr }));
  });
}

async function query(expr: string): Promise<{ status: string; data: { result: { metric: Record<string, string>; value: [number, string] }[] }; error?: string }> {
  const response = await fetch(`${prometheusUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
  return (await response.json()) as { status: string; data: { result: { metric: Record<string, string>; value: [number, string] }[] }; error?: string };
}

beforeAll(async () => {
  worker = await startFakeWorker();
  for (let index = 0; index < 2; index++) {
    const gateway = await startGateway({ CIVITAI_BASE_URL: 'off', WORKER_URLS: worker.url, WORKER_HEALTH_INTERVAL_MS: '100' });
    await gateway.app.listen({ port: 0, host: '127.0.0.1' });
    gateways.push(gateway);
    targets.push(`127.0.0.1:${(gateway.app.server.address() as AddressInfo).port}`);
  }
  dataDir = mkdtempSync(join(tmpdir(), 'clipgate-prometheus-'));
  const config = readFileSync(join(root, 'docker/prometheus.yml'), 'utf8')
    .replace(/scrape_interval: \d+s/, 'scrape_interval: 1s')
    .replace('["gateway-1:8080", "gateway-2:8080"]', JSON.stringify(targets));
  expect(config).toContain(targets[0]);
  writeFileSync(join(dataDir, 'prometheus.yml'), config);
  const port = await freePort();
  prometheusUrl = `http://127.0.0.1:${port}`;
  prometheus = spawn('prometheus', [`--config.file=${join(dataDir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dataDir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  prometheus.stdout?.on('data', (chunk: Buffer) => (prometheusOutput += chunk.toString()));
  prometheus.stderr?.on('data', (chunk: Buffer) => (prometheusOutput += chunk.toString()));
  await until(async () => {
    try {
      return (await fetch(`${prometheusUrl}/-/ready`)).ok;
    } catch {
      return false;
    }
  }, 20_000);
}, 40_000);

afterAll(async () => {
  prometheus?.kill('SIGKILL');
  await Promise.all(gateways.map((gateway) => gateway.close()));
  await worker?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('docker/prometheus.yml', () => {
  it('passes promtool', async () => {
    const { code, output } = await run('promtool', ['check', 'config', 'docker/prometheus.yml']);
    expect(code, output).toBe(0);
  });

  it('scrapes both replicas, and Prometheus answers every query of the dashboard over what they expose', async () => {
    const sendTasks = async () => {
      for (const gateway of gateways) {
        const tasks = Array.from({ length: 3 }, () => ({ taskType: 'imageInference', taskUUID: randomUUID(), model: 'civitai:4384@128713', positivePrompt: 'a lighthouse', width: 512, height: 512 }));
        await until(() => gateway.dispatch.pool?.workers.every((entry) => entry.healthy) ?? false);
        const response = await gateway.app.inject({ method: 'POST', url: '/v1/tasks', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(tasks) });
        expect(response.statusCode).toBe(200);
      }
    };
    const succeeded = async () => Number((await query('sum(clipgate_task_duration_seconds_count{outcome="success"})')).data.result[0]?.value[1] ?? 0);
    await sendTasks();
    await until(async () => (await query('up{job="clipgate"} == 1')).data.result.length === 2, 20_000).catch(() => {
      throw new Error(`Prometheus did not scrape both gateways:\n${prometheusOutput.slice(-2000)}`);
    });
    await until(async () => (await succeeded()) === 6, 20_000);
    // A second batch after the series exist, so rate() sees them grow.
    await sendTasks();
    await until(async () => (await succeeded()) === 12, 20_000);

    const exposed = await (await fetch(`http://${targets[0]}/metrics`)).text();
    for (const panel of panels) {
      for (const target of panel.targets) {
        const answer = await query(target.expr);
        expect(answer.status, `${panel.title}: ${target.expr}: ${answer.error}`).toBe('success');
        for (const name of target.expr.match(/\b(clipgate|process|nodejs)_[a-z0-9_]+/g) ?? []) {
          const family = name.replace(/_(bucket|count|sum)$/, '');
          expect(exposed, `${panel.title} reads ${name}`).toMatch(new RegExp(`^# TYPE ${family} `, 'm'));
        }
      }
    }
    const perStatus = await query(panels[0]!.targets[0]!.expr);
    expect(perStatus.data.result.some((series) => series.metric['status_code'] === '200' && Number(series.value[1]) > 0)).toBe(true);
    const inFlight = await query('max by (worker) (clipgate_worker_capacity)');
    expect(inFlight.data.result).toEqual([expect.objectContaining({ metric: { worker: worker.url }, value: [expect.any(Number), '4'] })]);
  }, 60_000);
});

describe('the Grafana dashboard', () => {
  it('is the one scripts/write-grafana-dashboard.ts writes, on the provisioned Prometheus data source', () => {
    const committed = readFileSync(join(root, 'docker/grafana/dashboards/clipgate.json'), 'utf8');
    expect(committed, 'run: npx tsx scripts/write-grafana-dashboard.ts').toBe(dashboardText());
    const dashboard = JSON.parse(committed) as { panels: { datasource: { uid: string }; targets: { expr: string }[] }[] };
    expect(dashboard.panels).toHaveLength(panels.length);
    const datasource = readFileSync(join(root, 'docker/grafana/provisioning/datasources/prometheus.yaml'), 'utf8');
    expect(datasource).toMatch(/uid: prometheus\n/);
    expect(dashboard.panels.every((panel) => panel.datasource.uid === 'prometheus')).toBe(true);
  });
});
