/**
 * The Grafana dashboard names only metrics and labels the controller
 * registers (read from its real registry, not from a list kept here), covers
 * what issue 18 asks it to show, and ships the same JSON in the chart and in
 * the construct's ConfigMap.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { dashboardJson, grafanaDashboard } from '../../constructs/index.js';
import { dashboardQueries } from '../../constructs/dashboard.js';
import { DASHBOARD_FILE } from '../../constructs/monitoring.js';
import { repoRoot } from '../../src/cluster/binaries.js';
import { ControllerMetrics } from '../../src/controller/observability/metrics.js';
import { find, synthController } from '../support/synth.js';

/** Every series name the controller can serve, with its label names. */
function exported(): Map<string, Set<string>> {
  const series = new Map<string, Set<string>>();
  for (const metric of new ControllerMetrics({ defaultMetrics: false }).registry.getMetricsAsArray()) {
    const labels = new Set<string>('labelNames' in metric && Array.isArray(metric.labelNames) ? (metric.labelNames as string[]) : []);
    if (String(metric.type) === 'histogram') {
      series.set(`${metric.name}_bucket`, new Set([...labels, 'le']));
      series.set(`${metric.name}_sum`, labels);
      series.set(`${metric.name}_count`, labels);
    } else series.set(metric.name, labels);
  }
  return series;
}

const FUNCTIONS = new Set(['sum', 'max', 'min', 'avg', 'count', 'rate', 'irate', 'increase', 'histogram_quantile', 'label_values', 'topk', 'bottomk', 'clamp_min', 'delta', 'deriv', 'abs']);
const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset']);

/** The metric names and label names a PromQL query (or a Grafana label_values query) uses. */
function promqlNames(query: string): { metrics: string[]; labels: string[] } {
  const labels: string[] = [];
  let rest = query;
  const labelValues = /^label_values\((.*),\s*([a-zA-Z_]\w*)\)$/.exec(rest);
  if (labelValues !== null) {
    labels.push(labelValues[2] ?? '');
    rest = labelValues[1] ?? '';
  }
  rest = rest.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  rest = rest.replace(/\{([^}]*)\}/g, (_m, inner: string) => {
    for (const m of inner.matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g)) labels.push(m[1] ?? '');
    return ' ';
  });
  rest = rest.replace(/\b(?:by|without)\s*\(([^)]*)\)/g, (_m, inner: string) => {
    labels.push(...inner.split(',').map((l) => l.trim()).filter((l) => l !== ''));
    return ' ';
  });
  rest = rest.replace(/\[[^\]]*\]/g, ' ');
  const metrics: string[] = [];
  for (const m of rest.matchAll(/([a-zA-Z_:][\w:]*)(\s*\()?/g)) {
    const name = m[1] ?? '';
    if (m[2] !== undefined) {
      if (!FUNCTIONS.has(name)) throw new Error(`unknown PromQL function ${name} in ${query}`);
    } else if (!KEYWORDS.has(name)) metrics.push(name);
  }
  return { metrics, labels };
}

/** What is wrong with a query: metrics the controller does not export, labels its metrics lack. */
function problems(query: string, series: Map<string, Set<string>>): string[] {
  const { metrics, labels } = promqlNames(query);
  const out: string[] = [];
  if (metrics.length === 0) out.push(`${query}: names no metric`);
  for (const metric of metrics) {
    const have = series.get(metric);
    if (have === undefined) out.push(`${query}: ${metric} is not exported`);
    else for (const label of labels) if (!have.has(label)) out.push(`${query}: ${metric} has no label ${label}`);
  }
  return out;
}

describe('the Grafana dashboard', () => {
  const series = exported();
  const queries = dashboardQueries();

  test('names only metrics and labels the controller exports', () => {
    expect(series.size).toBeGreaterThan(20);
    expect(queries.length).toBeGreaterThan(15);
    expect(queries.flatMap((q) => problems(q, series))).toEqual([]);
  });

  test('the check catches a metric or a label the controller does not export', () => {
    expect(problems('sum by (pool) (workerpool_controller_pool_desired_workers)', series)).toEqual(['sum by (pool) (workerpool_controller_pool_desired_workers): workerpool_controller_pool_desired_workers has no label pool']);
    expect(problems('rate(workerpool_controller_runs_total[5m])', series)).toEqual(['rate(workerpool_controller_runs_total[5m]): workerpool_controller_runs_total is not exported']);
    expect(problems('label_values(spacelift_worker_pool_runs_pending, namespace)', series)).toEqual(['label_values(spacelift_worker_pool_runs_pending, namespace): spacelift_worker_pool_runs_pending has no label namespace']);
  });

  test('shows what the issue asks for: pool sizes, pending runs, outcomes and reasons, Pod start latency, reconcile errors, sessions and reconnects', () => {
    const used = new Set(queries.flatMap((q) => promqlNames(q).metrics));
    const labels = new Set(queries.flatMap((q) => promqlNames(q).labels));
    for (const metric of [
      'workerpool_controller_pool_desired_workers',
      'workerpool_controller_pool_actual_workers',
      'workerpool_controller_pool_busy_workers',
      'workerpool_controller_pool_idle_workers',
      'spacelift_worker_pool_runs_pending',
      'workerpool_controller_run_outcomes_total',
      'workerpool_controller_run_pod_start_latency_seconds_bucket',
      'workerpool_controller_reconcile_errors_total',
      'workerpool_controller_mqtt_sessions',
      'workerpool_controller_mqtt_reconnects_total',
    ]) {
      expect(used, metric).toContain(metric);
    }
    expect(labels).toContain('reason_class');
    expect(labels).toContain('status');
  });

  test('panels do not overlap and every panel queries through the data source variable', () => {
    const panels = grafanaDashboard().panels as { type: string; gridPos: { x: number; y: number; w: number; h: number }; datasource?: { uid: string } }[];
    const cells = new Set<string>();
    for (const p of panels) {
      for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++) {
        for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
          expect(cells.has(`${x},${y}`), JSON.stringify(p.gridPos)).toBe(false);
          cells.add(`${x},${y}`);
        }
      }
      if (p.type !== 'row') expect(p.datasource?.uid).toBe('${datasource}');
    }
  });

  test('ships as JSON in the chart and, with dashboards.enabled, in a ConfigMap labelled for the sidecar', () => {
    expect(readFileSync(join(repoRoot, 'dist', 'chart', 'dashboards', DASHBOARD_FILE), 'utf8')).toBe(dashboardJson());
    const configMap = find(synthController({ dashboards: { enabled: true } }), 'ConfigMap', 'kube-workerpool-controller-dashboard');
    expect(configMap.metadata.labels).toMatchObject({ grafana_dashboard: '1', 'app.kubernetes.io/component': 'dashboard' });
    expect(JSON.parse((configMap.data as Record<string, string>)[DASHBOARD_FILE] ?? '')).toEqual(grafanaDashboard());
    expect(synthController().some((o) => o.kind === 'ConfigMap')).toBe(false);
  });
});
