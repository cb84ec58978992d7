/** The demo's progress output: steps with elapsed time, and never a long silence. */
import { Writable } from 'node:stream';
import { afterEach, expect, test, vi } from 'vitest';
import { formatElapsed, Progress } from '../../src/demo/progress.js';

function sink(): { out: Writable; text: () => string } {
  let text = '';
  const out = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString();
      done();
    },
  });
  return { out, text: () => text };
}

afterEach(() => {
  vi.useRealTimers();
});

test('elapsed time reads as minutes:seconds', () => {
  expect(formatElapsed(0)).toBe('0:00');
  expect(formatElapsed(65_400)).toBe('1:05');
  expect(formatElapsed(13 * 60_000 + 29_000)).toBe('13:29');
});

test('numbers the steps and stamps notes with the elapsed time', () => {
  const { out, text } = sink();
  const p = new Progress(3, out);
  p.step('first thing');
  p.note('doing it');
  p.command('kubectl get workerpools');
  p.output('NAME   DESIRED POOL SIZE\n\n');
  p.stop();
  expect(text()).toBe('\n[0:00] step 1/3: first thing\n[0:00]   doing it\n\n$ kubectl get workerpools\nNAME   DESIRED POOL SIZE\n');
});

test('prints a heartbeat with the step and its duration when a step is quiet for 15 s', () => {
  vi.useFakeTimers();
  const { out, text } = sink();
  const p = new Progress(9, out);
  p.step('Kubernetes binaries');
  vi.advanceTimersByTime(14_000);
  expect(text()).not.toContain('still');
  vi.advanceTimersByTime(2_000);
  expect(text()).toContain('[0:15]   ... still at step 1/9 (Kubernetes binaries): 0:15 in this step');
  const beats = (): number => text().split('still at step').length - 1;
  vi.advanceTimersByTime(10_000);
  expect(beats()).toBe(1);
  vi.advanceTimersByTime(6_000);
  expect(beats()).toBe(2);
  p.stop();
});

test('turns a stream of build output into prefixed, stamped lines', async () => {
  const { out, text } = sink();
  const p = new Progress(1, out);
  const lines = p.lines('build: ');
  lines.write('[build-binaries +0m01s] compiling');
  lines.write(' etcd\n[build-binaries +0m09s] done\npartial');
  await new Promise<void>((resolve) => lines.end(resolve));
  p.stop();
  expect(text()).toBe('[0:00]   build: [build-binaries +0m01s] compiling etcd\n[0:00]   build: [build-binaries +0m09s] done\n[0:00]   build: partial\n');
});
