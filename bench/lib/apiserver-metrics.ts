/**
 * kube-apiserver's own request counters (`apiserver_request_total` on
 * /metrics), scraped with the kubeconfig's admin client certificate.
 */
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';

/** "VERB resource[/subresource]" -> count. */
export type RequestCounts = Map<string, number>;

export async function scrapeRequestCounts(kc: KubeConfig): Promise<RequestCounts> {
  return parseRequestCounts(await scrape(kc));
}

/** Requests answered with this HTTP code, all verbs and resources together. */
export async function scrapeCodeCount(kc: KubeConfig, code: string): Promise<number> {
  let total = 0;
  for (const line of (await scrape(kc)).split('\n')) {
    if (line.startsWith('apiserver_request_total{') && line.includes(`code="${code}"`)) total += Number(line.slice(line.lastIndexOf('}') + 1).trim());
  }
  return total;
}

async function scrape(kc: KubeConfig): Promise<string> {
  const opts: https.RequestOptions = {};
  await kc.applyToHTTPSOptions(opts);
  const server = kc.getCurrentCluster()?.server.replace(/\/+$/, '') ?? '';
  const text = await new Promise<string>((resolve, reject) => {
    const req = https.request(`${server}/metrics`, { ...opts, agent: false, headers: { Accept: 'text/plain' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`GET /metrics: HTTP ${res.statusCode}: ${body.slice(0, 200)}`))));
    });
    req.on('error', reject);
    req.end();
  });
  return text;
}

export function parseRequestCounts(text: string): RequestCounts {
  const counts: RequestCounts = new Map();
  for (const line of text.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    const close = line.lastIndexOf('}');
    const labels = new Map<string, string>();
    for (const m of line.slice('apiserver_request_total{'.length, close).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels.set(m[1] ?? '', m[2] ?? '');
    const value = Number(line.slice(close + 1).trim());
    const resource = labels.get('resource') ?? '';
    if (resource === '') continue; // /metrics, /readyz and other non-resource paths
    const sub = labels.get('subresource') ?? '';
    const key = `${labels.get('verb') ?? '?'} ${resource}${sub === '' ? '' : `/${sub}`}`;
    counts.set(key, (counts.get(key) ?? 0) + value);
  }
  return counts;
}

export function diffCounts(before: RequestCounts, after: RequestCounts): RequestCounts {
  const out: RequestCounts = new Map();
  for (const [k, v] of after) {
    const d = v - (before.get(k) ?? 0);
    if (d > 0) out.set(k, d);
  }
  return out;
}

/** Scales counts over `seconds` to per-minute rates. */
export function perMinute(counts: RequestCounts, seconds: number): Map<string, number> {
  return new Map([...counts].map(([k, v]) => [k, (v * 60) / seconds]));
}
