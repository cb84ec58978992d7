/**
 * The Grafana dashboard of the controller's metrics (docs/metrics.md lists
 * them): the pools' workers, pending runs, run outcomes and their reasons,
 * run Pod latencies, reconcile errors and the MQTT sessions. `npm run synth`
 * writes it to dist/grafana-dashboard.json; the install ships it in a
 * ConfigMap for Grafana's dashboard sidecar when asked (`dashboards`).
 *
 * Metric names are written out here, not imported from the controller's
 * metrics module: that would load prom-client into every cdk8s app. A unit
 * test checks every query against the metrics and labels the controller
 * really registers.
 */

/** A PromQL query and its legend. */
interface Query {
  readonly expr: string;
  readonly legend: string;
}

interface PanelSpec {
  readonly title: string;
  readonly description: string;
  readonly unit: string;
  readonly queries: readonly Query[];
  /** Stacked bars rather than lines (counts of discrete events). */
  readonly bars?: boolean;
}

/** Series of the pools the dashboard's variables select. */
const POOLS = 'namespace=~"$namespace", name=~"$pool"';
const RATE = '$__rate_interval';

const ROWS: readonly (readonly [title: string, panels: readonly PanelSpec[]])[] = [
  [
    'Pools',
    [
      {
        title: 'Workers per pool',
        description: 'Desired (status.desiredPoolSize), actual (registered and connected), busy and idle workers of each pool, as `kubectl get workerpools` shows them.',
        unit: 'short',
        queries: [
          { expr: `sum by (namespace, name) (workerpool_controller_pool_desired_workers{${POOLS}})`, legend: '{{namespace}}/{{name}} desired' },
          { expr: `sum by (namespace, name) (workerpool_controller_pool_actual_workers{${POOLS}})`, legend: '{{namespace}}/{{name}} actual' },
          { expr: `sum by (namespace, name) (workerpool_controller_pool_busy_workers{${POOLS}})`, legend: '{{namespace}}/{{name}} busy' },
          { expr: `sum by (namespace, name) (workerpool_controller_pool_idle_workers{${POOLS}})`, legend: '{{namespace}}/{{name}} idle' },
        ],
      },
      {
        title: 'Pending runs',
        description: 'Runs queued in the backend for each pool and not yet sent to a worker (spacelift_worker_pool_runs_pending): the signal to scale on.',
        unit: 'short',
        queries: [{ expr: 'sum by (worker_pool_name) (spacelift_worker_pool_runs_pending{worker_pool_name=~"$pool"})', legend: '{{worker_pool_name}}' }],
      },
      {
        title: 'Autoscaler: desired, min and max',
        description: 'For pools with spec.autoscaling: the size the autoscaler asks for, between its bounds.',
        unit: 'short',
        queries: [
          { expr: `sum by (namespace, name) (workerpool_controller_autoscaling_desired_workers{${POOLS}})`, legend: '{{namespace}}/{{name}} desired' },
          { expr: `sum by (namespace, name) (workerpool_controller_autoscaling_min_workers{${POOLS}})`, legend: '{{namespace}}/{{name}} min' },
          { expr: `sum by (namespace, name) (workerpool_controller_autoscaling_max_workers{${POOLS}})`, legend: '{{namespace}}/{{name}} max' },
        ],
      },
    ],
  ],
  [
    'Runs',
    [
      {
        title: 'Run outcomes',
        description: 'Runs whose end was reported, per status (finished, failed, stopped), in each interval.',
        unit: 'short',
        bars: true,
        queries: [{ expr: `sum by (status) (increase(workerpool_controller_run_outcomes_total[${RATE}]))`, legend: '{{status}}' }],
      },
      {
        title: 'Failed runs by reason',
        description: 'Failed runs per reason class (exit_code, oom_killed, image_pull, unschedulable, evicted, ...; docs/metrics.md lists them).',
        unit: 'short',
        bars: true,
        queries: [{ expr: `sum by (reason_class) (increase(workerpool_controller_run_outcomes_total{status="failed"}[${RATE}]))`, legend: '{{reason_class}}' }],
      },
      {
        title: 'Run Pod start latency',
        description: 'From a run Pod being created to its run being reported running (scheduling, image pulls, init).',
        unit: 's',
        queries: [
          { expr: `histogram_quantile(0.5, sum by (le) (rate(workerpool_controller_run_pod_start_latency_seconds_bucket[${RATE}])))`, legend: 'p50' },
          { expr: `histogram_quantile(0.99, sum by (le) (rate(workerpool_controller_run_pod_start_latency_seconds_bucket[${RATE}])))`, legend: 'p99' },
        ],
      },
      {
        title: 'Run Pod creation latency',
        description: 'From a schedule message arriving to its run Pod being created.',
        unit: 's',
        queries: [
          { expr: `histogram_quantile(0.5, sum by (le) (rate(workerpool_controller_run_pod_creation_latency_seconds_bucket[${RATE}])))`, legend: 'p50' },
          { expr: `histogram_quantile(0.99, sum by (le) (rate(workerpool_controller_run_pod_creation_latency_seconds_bucket[${RATE}])))`, legend: 'p99' },
        ],
      },
    ],
  ],
  [
    'Controller',
    [
      {
        title: 'Reconcile errors',
        description: 'Reconciles that ended in an error, per second, by kind (workerpool, worker).',
        unit: 'ops',
        queries: [{ expr: `sum by (kind) (rate(workerpool_controller_reconcile_errors_total[${RATE}]))`, legend: '{{kind}}' }],
      },
      {
        title: 'Work queue depth',
        description: 'Keys waiting to be reconciled now, by kind.',
        unit: 'short',
        queries: [{ expr: 'sum by (kind) (workerpool_controller_workqueue_depth)', legend: '{{kind}}' }],
      },
      {
        title: 'MQTT sessions',
        description: 'Sessions the leader holds (one per registered worker) and those connected to the broker now.',
        unit: 'short',
        queries: [
          { expr: 'sum(workerpool_controller_mqtt_sessions)', legend: 'held' },
          { expr: 'sum(workerpool_controller_mqtt_sessions_connected)', legend: 'connected' },
        ],
      },
      {
        title: 'MQTT reconnects',
        description: 'Times a session connected again after losing its connection, in each interval.',
        unit: 'short',
        bars: true,
        queries: [{ expr: `sum(increase(workerpool_controller_mqtt_reconnects_total[${RATE}]))`, legend: 'reconnects' }],
      },
      {
        title: 'Worker creation errors',
        description: 'Failed attempts at making a worker (key, storage or registration with the backend), in each interval.',
        unit: 'short',
        bars: true,
        queries: [{ expr: `sum(increase(spacelift_workerpool_controller_worker_creation_errors_total[${RATE}]))`, legend: 'errors' }],
      },
      {
        title: 'Rejected backend messages',
        description: 'Messages from the backend that failed validation and were dropped, in each interval.',
        unit: 'short',
        bars: true,
        queries: [{ expr: `sum(increase(workerpool_controller_messages_rejected_total[${RATE}]))`, legend: 'rejected' }],
      },
    ],
  ],
];

/** Template variables: the data source, and the pools to show (by namespace and name). */
const VARIABLES = [
  { name: 'datasource', label: 'Data source', type: 'datasource', query: 'prometheus' },
  { name: 'namespace', label: 'Namespace', query: 'label_values(workerpool_controller_pool_desired_workers, namespace)' },
  { name: 'pool', label: 'Pool', query: 'label_values(workerpool_controller_pool_desired_workers{namespace=~"$namespace"}, name)' },
] as const;

export const DASHBOARD_UID = 'kube-workerpool-controller';

/** The dashboard as Grafana's JSON model. */
export function grafanaDashboard(): Record<string, unknown> {
  const datasource = { type: 'prometheus', uid: '${datasource}' };
  const panels: Record<string, unknown>[] = [];
  let id = 1;
  let y = 0;
  for (const [title, specs] of ROWS) {
    panels.push({ id: id++, type: 'row', title, collapsed: false, gridPos: { h: 1, w: 24, x: 0, y }, panels: [] });
    y += 1;
    specs.forEach((spec, i) => {
      const x = (i % 2) * 12;
      if (i > 0 && i % 2 === 0) y += 8;
      panels.push({
        id: id++,
        type: 'timeseries',
        title: spec.title,
        description: spec.description,
        datasource,
        gridPos: { h: 8, w: 12, x, y },
        fieldConfig: {
          defaults: {
            unit: spec.unit,
            min: 0,
            custom: spec.bars === true ? { drawStyle: 'bars', fillOpacity: 80, stacking: { mode: 'normal', group: 'A' } } : { drawStyle: 'line', fillOpacity: 10 },
          },
          overrides: [],
        },
        options: { legend: { displayMode: 'list', placement: 'bottom', showLegend: true }, tooltip: { mode: 'multi', sort: 'desc' } },
        targets: spec.queries.map((q, n) => ({ refId: String.fromCharCode(65 + n), datasource, expr: q.expr, legendFormat: q.legend })),
      });
    });
    y += 8;
  }
  return {
    uid: DASHBOARD_UID,
    title: 'kube-workerpool-controller',
    description: 'Worker pools, runs and the controller: the metrics of docs/metrics.md.',
    tags: ['kube-workerpool-controller'],
    editable: true,
    schemaVersion: 39,
    version: 1,
    refresh: '30s',
    time: { from: 'now-6h', to: 'now' },
    timezone: 'browser',
    templating: {
      list: VARIABLES.map((v) =>
        'type' in v
          ? { name: v.name, label: v.label, type: v.type, query: v.query, current: {}, hide: 0 }
          : {
              name: v.name,
              label: v.label,
              type: 'query',
              datasource,
              query: { query: v.query, refId: v.name },
              definition: v.query,
              includeAll: true,
              multi: true,
              allValue: '.*',
              current: { text: 'All', value: '$__all' },
              refresh: 2,
              sort: 1,
              hide: 0,
            },
      ),
    },
    annotations: { list: [] },
    panels,
  };
}

/** The queries of every panel and variable, for the test that checks them against the controller's metrics. */
export function dashboardQueries(dashboard: Record<string, unknown> = grafanaDashboard()): string[] {
  const panels = dashboard.panels as { targets?: { expr: string }[] }[];
  const variables = (dashboard.templating as { list: { query: unknown }[] }).list;
  return [
    ...panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)),
    ...variables.flatMap((v) => (typeof v.query === 'object' && v.query !== null ? [(v.query as { query: string }).query] : [])),
  ];
}
