/** The real helm binary (built from the Go module proxy, cached) and the chart in dist/chart. */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ensureHelm, repoRoot } from '../../src/cluster/binaries.js';
import { defaultValues, type ChartValues } from '../../src/chart/values.js';
import type { ManifestObject } from './synth.js';

export const CHART = join(repoRoot, 'dist', 'chart');
/** The Kubernetes version of the test cluster (versions.env), for `helm template`. */
export const KUBE_VERSION = '1.34.4';

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs helm; never throws on a non-zero exit (tests assert on the code and the message). */
export async function helm(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<HelmResult> {
  const path = await ensureHelm();
  // HOME-like state of its own, so that a user's repositories and plugins play no part.
  const state = mkdtempSync(join(tmpdir(), 'kwc-helm-'));
  return new Promise((resolve, reject) => {
    execFile(
      path,
      [...args],
      {
        env: { ...process.env, HELM_CACHE_HOME: join(state, 'cache'), HELM_CONFIG_HOME: join(state, 'config'), HELM_DATA_HOME: join(state, 'data'), ...env },
        maxBuffer: 64 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') reject(error);
        else resolve({ code: typeof error?.code === 'number' ? error.code : 0, stdout, stderr });
      },
    );
  });
}

export async function helmOk(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const result = await helm(args, env);
  if (result.code !== 0) throw new Error(`helm ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
  return result.stdout;
}

/** A values file holding `values` (JSON is YAML). */
export function valuesFile(values: unknown): string {
  const file = join(mkdtempSync(join(tmpdir(), 'kwc-values-')), 'values.yaml');
  writeFileSync(file, JSON.stringify(values));
  return file;
}

export function parseObjects(text: string): ManifestObject[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as ManifestObject | null)
    .filter((o): o is ManifestObject => o !== null);
}

/** `helm template` of dist/chart with these values. */
export async function renderChart(values: unknown, release = { name: 'kwc', namespace: 'kwc-system' }): Promise<ManifestObject[]> {
  const out = await helmOk(['template', release.name, CHART, '--namespace', release.namespace, '--kube-version', KUBE_VERSION, '-f', valuesFile(values)]);
  return parseObjects(out);
}

/** Values as Helm computes them: maps merged key by key, lists and scalars replaced, null removes a key. */
export function coalesce(base: unknown, override: unknown): unknown {
  if (!isMap(base) || !isMap(override)) return override;
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(override)) {
    if (value === null) delete out[key];
    else out[key] = key in base ? coalesce(base[key], value) : value;
  }
  return out;
}

function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function chartValues(override: unknown): ChartValues {
  return coalesce(defaultValues(), override) as ChartValues;
}
