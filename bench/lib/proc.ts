/** Linux /proc readings of a process: resident memory and CPU time. */
import { readFileSync } from 'node:fs';

const CLOCK_TICKS = 100; // USER_HZ on Linux

export interface Memory {
  rssMiB: number;
  /** Peak resident set (VmHWM). */
  peakMiB: number;
}

export function memoryOf(pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMiB: kb('VmRSS') / 1024, peakMiB: kb('VmHWM') / 1024 };
}

/** User + system CPU seconds the process has used so far (0 if it is gone). */
export function cpuSecondsOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}

/** CPU seconds of several processes between two points in time. */
export class CpuMeter {
  private start = new Map<string, number>();
  constructor(private readonly pids: () => Record<string, number | undefined>) {}

  begin(): void {
    this.start = new Map(Object.entries(this.pids()).filter(([, p]) => p !== undefined).map(([k, p]) => [k, cpuSecondsOf(p as number)]));
  }

  /** Seconds per process since begin(). */
  end(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, p] of Object.entries(this.pids())) {
      if (p === undefined) continue;
      out[k] = cpuSecondsOf(p) - (this.start.get(k) ?? 0);
    }
    return out;
  }
}
