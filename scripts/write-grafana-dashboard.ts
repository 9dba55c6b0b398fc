import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * Writes docker/grafana/dashboards/clipgate.json, the dashboard Grafana provisions in docker/compose.yaml:
 * one panel per question an operator asks of the gateway. test/docker/prometheus.test.ts runs every query
 * against a real Prometheus scraping real gateways, so a renamed metric breaks the build, not the dashboard.
 */

interface Panel {
  readonly title: string;
  readonly unit: string;
  readonly targets: readonly { readonly expr: string; readonly legend: string }[];
}

const rate = (series: string, by: string) => `sum by (${by}) (rate(${series}[5m]))`;
const quantile = (q: number, histogram: string, by: string) => `histogram_quantile(${q}, sum by (le${by ? `, ${by}` : ''}) (rate(${histogram}_bucket[5m])))`;

export const panels: readonly Panel[] = [
  { title: 'Requests per second by status', unit: 'reqps', targets: [{ expr: rate('clipgate_http_request_duration_seconds_count', 'status_code'), legend: '{{status_code}}' }] },
  { title: 'Request latency p99 by route', unit: 's', targets: [{ expr: quantile(0.99, 'clipgate_http_request_duration_seconds', 'route'), legend: '{{route}}' }] },
  { title: 'Tasks per second by type and outcome', unit: 'ops', targets: [{ expr: rate('clipgate_task_duration_seconds_count', 'task_type, outcome'), legend: '{{task_type}} {{outcome}}' }] },
  {
    title: 'Task latency by type (p50, p95)',
    unit: 's',
    targets: [
      { expr: quantile(0.5, 'clipgate_task_duration_seconds', 'task_type'), legend: 'p50 {{task_type}}' },
      { expr: quantile(0.95, 'clipgate_task_duration_seconds', 'task_type'), legend: 'p95 {{task_type}}' },
    ],
  },
  {
    title: 'Worker jobs in flight and capacity',
    unit: 'short',
    targets: [
      { expr: 'sum by (worker) (clipgate_worker_in_flight)', legend: 'in flight {{worker}}' },
      { expr: 'max by (worker) (clipgate_worker_capacity)', legend: 'capacity {{worker}}' },
    ],
  },
  {
    title: 'Workers healthy, breakers not closed',
    unit: 'short',
    targets: [
      { expr: 'min by (worker) (clipgate_worker_healthy)', legend: 'healthy {{worker}}' },
      { expr: 'max by (worker, state) (clipgate_worker_breaker_state{state!="closed"})', legend: 'breaker {{state}} {{worker}}' },
    ],
  },
  {
    title: 'Admission queue: length and wait p95',
    unit: 'short',
    targets: [
      { expr: 'sum(clipgate_worker_queue_length)', legend: 'waiting' },
      { expr: quantile(0.95, 'clipgate_worker_queue_wait_seconds', ''), legend: 'wait p95 (s)' },
    ],
  },
  {
    title: 'Job queues (async tasks, webhooks)',
    unit: 'short',
    targets: [
      // Every replica reports the same shared counts: max, not sum.
      { expr: 'max by (queue, state) (clipgate_job_queue_jobs)', legend: '{{queue}} {{state}}' },
      { expr: quantile(0.95, 'clipgate_job_queue_wait_seconds', 'queue'), legend: 'wait p95 {{queue}} (s)' },
    ],
  },
  {
    title: 'Model cache lookups and coalescing',
    unit: 'ops',
    targets: [
      { expr: rate('clipgate_cache_lookups_total', 'result'), legend: '{{result}}' },
      { expr: rate('clipgate_cache_coalesced_total', 'where'), legend: 'coalesced {{where}}' },
      { expr: rate('clipgate_cache_errors_total', 'kind'), legend: 'trouble {{kind}}' },
    ],
  },
  {
    title: 'Registry lookups: rate and p95',
    unit: 'ops',
    targets: [
      { expr: rate('clipgate_registry_request_duration_seconds_count', 'outcome'), legend: '{{outcome}}' },
      { expr: quantile(0.95, 'clipgate_registry_request_duration_seconds', ''), legend: 'p95 (s)' },
    ],
  },
  {
    title: 'Embedding and LoRA files: downloads and refusals',
    unit: 'ops',
    targets: [
      { expr: rate('clipgate_model_file_downloads_total', 'kind'), legend: 'downloads' },
      { expr: rate('clipgate_model_file_refusals_total', 'code'), legend: 'refused {{code}}' },
    ],
  },
  { title: 'Webhook attempts by outcome', unit: 'ops', targets: [{ expr: rate('clipgate_webhook_attempt_duration_seconds_count', 'outcome'), legend: '{{outcome}}' }] },
  {
    title: 'WebSocket sessions',
    unit: 'short',
    targets: [
      { expr: 'sum(clipgate_websocket_sessions_attached)', legend: 'attached' },
      { expr: 'sum(clipgate_websocket_sessions_detached)', legend: 'detached, in resume window' },
      { expr: 'sum(clipgate_websocket_tasks_running)', legend: 'tasks running' },
    ],
  },
  {
    title: 'Gateway processes: CPU and event-loop delay p99',
    unit: 'short',
    targets: [
      { expr: 'sum by (instance) (rate(process_cpu_seconds_total[5m]))', legend: 'CPU {{instance}}' },
      { expr: 'max by (instance) (nodejs_eventloop_lag_p99_seconds)', legend: 'loop delay p99 {{instance}} (s)' },
    ],
  },
];

/** The dashboard as the file holds it. */
export function dashboardText(): string {
  return `${JSON.stringify(dashboard(), null, 2)}\n`;
}

function dashboard(): unknown {
  return {
    uid: 'clipgate',
    title: 'clipgate',
    tags: ['clipgate'],
    timezone: 'browser',
    schemaVersion: 39,
    version: 1,
    refresh: '30s',
    time: { from: 'now-1h', to: 'now' },
    panels: panels.map((panel, index) => ({
      id: index + 1,
      type: 'timeseries',
      title: panel.title,
      datasource: { type: 'prometheus', uid: 'prometheus' },
      gridPos: { x: (index % 2) * 12, y: Math.floor(index / 2) * 8, w: 12, h: 8 },
      fieldConfig: { defaults: { unit: panel.unit }, overrides: [] },
      options: { legend: { displayMode: 'list', placement: 'bottom' }, tooltip: { mode: 'multi' } },
      targets: panel.targets.map((target, targetIndex) => ({
        refId: String.fromCharCode(65 + targetIndex),
        datasource: { type: 'prometheus', uid: 'prometheus' },
        expr: target.expr,
        legendFormat: target.legend,
      })),
    })),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const path = fileURLToPath(new URL('../docker/grafana/dashboards/clipgate.json', import.meta.url));
  writeFileSync(path, dashboardText());
  console.log(`wrote ${path}`);
}
