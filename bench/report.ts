/**
 * The bench's table (terminal) and its section of docs/benchmarks.md.
 * Each run owns one marked block of the file, keyed by its size, so runs at
 * N = 100 and N = 1000 sit side by side and hand-written text around them stays.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { CONTROLLER_RESOURCES, type BenchResult } from './bench.js';

export interface Row {
  measure: string;
  result: string;
  limit: string;
  ratio: string;
  goal: string;
  met: string;
}

const f = (v: number | undefined, digits = 2): string => (v === undefined || Number.isNaN(v) ? '-' : v.toFixed(digits));
const yes = (ok: boolean): string => (ok ? 'yes' : 'NO');

export const GOALS = {
  scaleRatio: 1.5,
  /** Seconds for poolSize 0 -> N, by N (issue 19). */
  scaleSeconds: { 100: 2, 1000: 15 } as Readonly<Record<number, number>>,
  latencyP99Ratio: 1.3,
  dispatchP50Ratio: 2,
  dispatchP99Ms: 250,
  rssAt1000MiB: 150,
  recoverySeconds: 5,
  coldStartP50Ms: 3000,
};

export function rows(r: BenchResult): Row[] {
  const out: Row[] = [];
  const s = r.scale;
  const l = s.limit;
  const absolute = GOALS.scaleSeconds[s.workers];
  out.push({
    measure: `scale-out 0 -> ${s.workers}`,
    result: `${f(s.seconds)} s (${f(s.workersPerSecond, 1)} workers/s)`,
    limit: `${f(s.limitSeconds)} s = keys ${f(l.keySeconds)} (${s.workers} x ${f(s.keyMedianMs, 2)} ms ${s.keyType} / ${s.cores} cores) + API writes ${f(l.apiSeconds)} + broker sessions ${f(l.brokerSeconds)}, bare, ${l.concurrency} at once`,
    ratio: f(s.ratio),
    goal: `ratio <= ${GOALS.scaleRatio}${absolute === undefined ? '' : `, <= ${absolute} s`}`,
    met: yes(s.ratio <= GOALS.scaleRatio && (absolute === undefined || s.seconds <= absolute)),
  });
  const d = r.dispatch;
  if (d !== undefined) {
    out.push({
      measure: `dispatch p50 (${d.runs} runs at once)`,
      result: `${f(d.dispatch.p50, 0)} ms`,
      limit: `bare create p50 ${f(d.bare.p50, 0)} ms`,
      ratio: f(d.p50Ratio),
      goal: `<= ${GOALS.dispatchP50Ratio}x bare`,
      met: yes(d.p50Ratio <= GOALS.dispatchP50Ratio),
    });
    out.push({
      measure: `dispatch p99 (${d.runs} runs at once)`,
      result: `${f(d.dispatch.p99, 0)} ms`,
      limit: `bare create p99 ${f(d.bare.p99, 0)} ms`,
      ratio: f(d.dispatch.p99 / d.bare.p99),
      goal: `<= ${GOALS.dispatchP99Ms} ms`,
      met: yes(d.dispatch.p99 <= GOALS.dispatchP99Ms),
    });
  }
  const i = r.idle;
  if (i !== undefined) {
    const lease = Object.entries(i.leasePerMinute).map(([k, v]) => `${k.split(' ')[0]} ${f(v, 0)}`).join(' + ');
    out.push({
      measure: `idle API requests (${i.workers} workers, ${f(i.seconds, 0)} s)`,
      result: `LIST ${f(i.listPerMinute, 1)}/min, GET ${f(i.getPerMinute, 1)}/min, all on its resources ${f(sum(Object.fromEntries(Object.entries(i.perMinute).filter(([k]) => CONTROLLER_RESOURCES.includes(k.split(' ')[1]?.split('/')[0] ?? '')))), 1)}/min`,
      limit: `lease renewals apart: ${lease === '' ? 'none' : `${lease} /min`}`,
      ratio: '-',
      goal: 'no LIST, no periodic GET',
      met: yes(i.listPerMinute === 0 && i.getPerMinute === 0),
    });
    const projected = i.rssBaseMiB + 1000 * Math.max(0, i.mibPerWorker);
    out.push({
      measure: `idle controller RSS (${i.workers} workers)`,
      result: `${f(i.rssMiB, 0)} MiB, ${f(i.mibPerWorker, 3)} MiB/worker`,
      limit: `${f(i.rssBaseMiB, 0)} MiB with no workers`,
      ratio: '-',
      goal: `<= ${GOALS.rssAt1000MiB} MiB at 1000`,
      met: i.workers >= 1000 ? yes(i.rssMiB <= GOALS.rssAt1000MiB) : `${yes(projected <= GOALS.rssAt1000MiB)} (projected ${f(projected, 0)} MiB)`,
    });
  }
  const lc = r.lifecycle;
  if (lc !== undefined) {
    const ends = (lc.controllerWritesPerRun['PATCH pods'] ?? 0);
    out.push({
      measure: `API writes per run (${lc.runs} runs, submission to end)`,
      result: `${f(lc.writesPerRun, 1)} in all; the controller's: ${Object.entries(lc.controllerWritesPerRun).map(([k, v]) => `${k} ${f(v, 1)}`).join(', ')}`,
      limit: `Pod patches ${f(ends, 1)} per run (the end, in one write); 409s ${lc.conflicts}`,
      ratio: '-',
      goal: 'one write per run end, no 409',
      met: yes(ends <= 1 && lc.conflicts === 0),
    });
  }
  const cs = r.coldStart;
  if (cs !== undefined) {
    out.push({
      measure: `cold start p50 (${cs.runs} runs, each to an autoscaled pool at 0 workers)`,
      result: `${f(cs.submitToRunning.p50, 0)} ms from POST /api/runs to the run Pod Running (p99 ${f(cs.submitToRunning.p99, 0)})`,
      limit: `${f(cs.bare.p50, 0)} ms: the same Pod created bare, create -> Running (p99 ${f(cs.bare.p99, 0)})`,
      ratio: f(cs.p50Ratio),
      goal: `<= ${GOALS.coldStartP50Ms} ms p50`,
      met: yes(cs.submitToRunning.p50 <= GOALS.coldStartP50Ms),
    });
  }
  const lt = r.latency;
  if (lt !== undefined) {
    for (const p of ['p50', 'p99'] as const) {
      const ratio = p === 'p50' ? lt.p50Ratio : lt.p99Ratio;
      out.push({
        measure: `queue-to-run latency ${p} (${lt.runs} runs, one at a time, idle workers)`,
        result: `${f(lt.submitToRunning[p], 0)} ms from POST /api/runs to the run Pod Running`,
        limit: `${f(lt.bare[p], 0)} ms: the same Pod created bare, create -> Running`,
        ratio: f(ratio),
        goal: `ratio <= ${GOALS.latencyP99Ratio}`,
        met: yes(ratio <= GOALS.latencyP99Ratio),
      });
    }
  }
  const fo = r.failover;
  if (fo !== undefined) {
    out.push({
      measure: `failover after the leader's SIGKILL (${fo.busy} busy of ${fo.workers})`,
      result: `${f(fo.toAdoptedSeconds)} s to every worker back`,
      limit: `lease ${fo.leaseDurationSeconds} s: Lease taken at ${f(fo.toLeaderSeconds)} s, caches synced at ${f(fo.toSyncedSeconds)} s`,
      ratio: f(fo.toAdoptedSeconds / fo.leaseDurationSeconds),
      goal: 'the lease duration, then a recovery',
      met: yes(fo.toLeaderSeconds <= fo.leaseDurationSeconds + 3),
    });
  }
  const rc = r.recovery;
  if (rc !== undefined) {
    const clean = rc.duplicatePods === 0 && rc.reRegistered === 0 && rc.secretsRewritten === 0 && rc.wrongStatus.length === 0 && rc.runsNotRunning === 0;
    out.push({
      measure: `recovery after SIGKILL (${rc.busy} busy of ${rc.workers})`,
      result: `${f(rc.seconds)} s${clean ? ', nothing duplicated' : ', NOT CLEAN'}`,
      limit: `start -> synced ${f(rc.startToSyncedSeconds)} s, synced -> adopted ${f(rc.syncedToAdoptedSeconds)} s`,
      ratio: '-',
      goal: `<= ${GOALS.recoverySeconds} s`,
      met: yes(rc.seconds <= GOALS.recoverySeconds && clean),
    });
  }
  return out;
}

function sum(o: Record<string, number>): number {
  return Object.values(o).reduce((a, v) => a + v, 0);
}

export function textTable(rs: readonly Row[]): string {
  const headers: Row = { measure: 'measure', result: 'result', limit: 'limit (same run)', ratio: 'ratio', goal: 'goal', met: 'met' };
  const keys = Object.keys(headers) as (keyof Row)[];
  const width = Object.fromEntries(keys.map((k) => [k, Math.max(...[headers, ...rs].map((r) => r[k].length))])) as Record<keyof Row, number>;
  const line = (r: Row): string => keys.map((k) => r[k].padEnd(width[k])).join('  ');
  return [line(headers), keys.map((k) => '-'.repeat(width[k])).join('  '), ...rs.map(line)].join('\n');
}

function mdTable(rs: readonly Row[]): string {
  const esc = (s: string): string => s.replace(/\|/g, '\\|');
  return [
    '| measure | result | limit (same run) | ratio | goal | met |',
    '| --- | --- | --- | --- | --- | --- |',
    ...rs.map((r) => `| ${[r.measure, r.result, r.limit, r.ratio, r.goal, r.met].map(esc).join(' | ')} |`),
  ].join('\n');
}

export function markdownSection(r: BenchResult, command: string): string {
  const lines: string[] = [];
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  lines.push(`### N = ${r.options.workers}, controller ${r.options.controller === 'compiled' ? 'compiled' : 'through tsx'}${r.options.protocolVersion === 1 ? ', protocol version 1 (RSA workers)' : ''}${r.options.broker === 'mosquitto' ? ', mosquitto' : ''} (${r.date.slice(0, 10)})`);
  lines.push('');
  lines.push(`\`${command}\` on ${r.cores} cores (${cpu}), controller run ${r.options.controller === 'compiled' ? 'compiled (plain node)' : 'through tsx (as `npm start`)'}, Node ${r.node}, kube-apiserver ${r.kubernetes ?? '(existing cluster)'}, the workers' broker ${r.options.broker === 'mosquitto' ? 'mosquitto (a process of its own)' : 'the backend\'s embedded one (aedes, in the bench process)'}; measured ${r.date}; load average ${f(r.load.start, 1)} at the start, ${f(r.load.end, 1)} at the end.`);
  lines.push('');
  lines.push(mdTable(rows(r)));
  lines.push('');
  const s = r.scale;
  const kinds = Object.entries(s.limit.writesPerWorker).map(([k, v]) => `\`${k}\` ${f(v)}`).join(', ');
  lines.push(`- Scale-out: ${s.keyType} key pair samples (ms, one at a time): ${s.keySamplesMs.join(', ')}; median ${f(s.keyMedianMs, 2)} ms.`);
  lines.push(`  The controller's API writes per worker (kube-apiserver's \`apiserver_request_total\` over the scale-out, the bench's own poolSize patch left out): ${kinds === '' ? 'none' : kinds}; the same writes by a bare client on copies of its objects took ${f(s.limit.apiSeconds)} s${s.limit.notReplayed.length > 0 ? ` (no copy of ${s.limit.notReplayed.join(', ')})` : ''}; ${s.workers} bare broker sessions (TLS with a certificate of their own, subscription, one acknowledged message) ${f(s.limit.brokerSeconds)} s; ${s.workers} bare registrations with the backend (not in the limit) ${f(s.limit.registerSeconds)} s.`);
  if (s.backendOnlineSeconds !== undefined) lines.push(`  The backend had all ${s.workers} sessions online after ${f(s.backendOnlineSeconds)} s; the status said so after ${f(s.seconds)} s.`);
  lines.push(`  Per worker (p50 / max, s): ${Object.entries(s.stages).map(([k, v]) => `${k} ${f(v.p50)} / ${f(v.max)}`).join('; ')}.`);
  if (s.reconciles !== undefined) lines.push(`  Reconciles during the scale-out: ${Object.entries(s.reconciles).map(([k, v]) => `${k} ${v}`).join(', ')}.`);
  lines.push(`  CPU seconds used during the scale-out (${f(s.seconds)} s x ${s.cores} cores = ${f(s.seconds * s.cores, 1)} available): ${Object.entries(s.cpu).map(([k, v]) => `${k} ${f(v, 1)}`).join(', ')}.`);
  const d = r.dispatch;
  if (d !== undefined) {
    lines.push(`- Dispatch (ms; publish = the backend handing \`schedule\` to its MQTT client, seen = the ADDED event arriving on a watch held on its own thread): publish -> seen p50 ${f(d.dispatch.p50, 1)}, p99 ${f(d.dispatch.p99, 1)}, max ${f(d.dispatch.max, 1)}; bare create -> seen p50 ${f(d.bare.p50, 1)}, p99 ${f(d.bare.p99, 1)}, max ${f(d.bare.max, 1)}; submit -> seen p50 ${f(d.submitToPod.p50, 1)}, p99 ${f(d.submitToPod.p99, 1)}. Schedules re-sent by the backend: ${d.resentSchedules}. kube-apiserver requests from the submission to the last Pod seen: ${Object.entries(d.apiRequests).map(([k, v]) => `\`${k}\` ${v}`).join(', ')}.${d.reconciles === undefined ? '' : ` Reconciles meanwhile: ${Object.entries(d.reconciles).map(([k, v]) => `${k} ${v}`).join(', ')}.`} Event-loop delay of the bench process (backend + embedded broker) meanwhile: p50 ${f(d.benchLoopDelay.p50, 1)}, p99 ${f(d.benchLoopDelay.p99, 1)}, max ${f(d.benchLoopDelay.max, 1)}.`);
  }
  const i = r.idle;
  if (i !== undefined) {
    const entries = (o: Record<string, number>): string => (Object.keys(o).length === 0 ? 'none' : Object.entries(o).map(([k, v]) => `\`${k}\` ${f(v, 1)}`).join(', '));
    lines.push(`- Idle, requests per minute by verb and resource (kube-apiserver \`apiserver_request_total\`, its own background of a ${r.options.baselineSeconds} s window before the controller started subtracted; resources other than ${CONTROLLER_RESOURCES.join(', ')} and leases are kube-apiserver's own loops that window missed): ${entries(i.perMinute)}. Lease renewals: ${entries(i.leasePerMinute)}. Background subtracted: ${entries(i.backgroundPerMinute)}.`);
    lines.push(`  Controller CPU while idle ${f(i.controllerCpuPercent, 2)} % of one core; MQTT messages to the backend ${f(i.mqttPerMinute, 1)}/min (heartbeats); RSS ${f(i.rssMiB, 1)} MiB (peak ${f(i.peakMiB, 1)}), ${f(i.rssBaseMiB, 1)} MiB before the scale-out.`);
  }
  const lt = r.latency;
  if (lt !== undefined) {
    lines.push(`- Queue-to-run latency (ms, ${lt.runs} runs of \`sleep 1\` one after another on idle workers, the node running them): POST /api/runs -> Running p50 ${f(lt.submitToRunning.p50, 0)}, p99 ${f(lt.submitToRunning.p99, 0)}, max ${f(lt.submitToRunning.max, 0)}; a bare copy of the run Pod, create -> Running, p50 ${f(lt.bare.p50, 0)}, p99 ${f(lt.bare.p99, 0)}, max ${f(lt.bare.max, 0)}.`);
  }
  const rc = r.recovery;
  if (rc !== undefined) {
    lines.push(`- Recovery: SIGKILL -> every worker's session re-announced (busy with its run, or idle) by a new process${rc.leaderElect ? ' campaigning for the Lease' : ' (no leader election; with --leader-elect a standby first waits out the 15 s lease)'}: ${f(rc.seconds)} s. Duplicate pods ${rc.duplicatePods}, re-registrations ${rc.reRegistered}, Secrets rewritten ${rc.secretsRewritten}, Worker statuses wrong ${rc.wrongStatus.length}, runs no longer running ${rc.runsNotRunning}.${rc.reconciles === undefined ? '' : ` Reconciles of the new process until then: ${Object.entries(rc.reconciles).map(([k, v]) => `${k} ${v}`).join(', ')}.`}`);
    if (rc.cpu !== undefined) lines.push(`  CPU seconds used from the kill to the last re-announcement (${f(rc.seconds)} s x ${r.cores} cores = ${f(rc.seconds * r.cores, 1)} available): ${Object.entries(rc.cpu).map(([k, v]) => `${k} ${f(v, 1)}`).join(', ')}.`);
    if (rc.apiRequests !== undefined) lines.push(`  kube-apiserver requests meanwhile (everyone's): ${Object.entries(rc.apiRequests).map(([k, v]) => `\`${k}\` ${v}`).join(', ')}.`);
  }
  if (r.problems.length > 0) lines.push(`- Problems seen: ${r.problems.join('; ')}`);
  return lines.join('\n');
}

/** Replaces this size's block in `path` (or appends it), keeping everything else. */
export function writeSection(path: string, r: BenchResult, command: string): void {
  const key = `workers=${r.options.workers}${r.options.controller === 'compiled' ? ',compiled' : ''}${r.options.protocolVersion === 1 ? ',protocol=1' : ''}${r.options.broker === 'mosquitto' ? ',broker=mosquitto' : ''}`;
  writeBlock(path, key, markdownSection(r, command));
}

/** Replaces the block marked `key` in `path` (or appends it), keeping everything else. */
export function writeBlock(path: string, key: string, markdown: string): void {
  const begin = `<!-- bench:${key} -->`;
  const end = `<!-- /bench:${key} -->`;
  const block = `${begin}\n${markdown}\n${end}`;
  let text = existsSync(path) ? readFileSync(path, 'utf8') : HEADER;
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  if (a >= 0 && b > a) text = text.slice(0, a) + block + text.slice(b + end.length);
  else text = `${text.replace(/\n*$/, '\n\n')}${block}\n`;
  writeFileSync(path, text);
}

const HEADER = `# Benchmarks

Written by \`npm run bench\` (bench/run.ts); each size's block is replaced by
its next run. Every limit is measured in the same run, on the same machine.

`;
