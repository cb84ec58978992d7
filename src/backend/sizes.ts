/** Byte sizes as people write them: `10485760`, `512Ki`, `10Mi`, `10MiB`, `1Gi` (binary units). */
const UNITS: Record<string, number> = { '': 1, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 };

export function parseByteSize(text: string): number {
  const m = /^(\d+)(Ki|Mi|Gi)?B?$/.exec(text.trim());
  const n = m === null ? NaN : Number(m[1]) * (UNITS[m[2] ?? ''] ?? NaN);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`must be a size in bytes such as 10485760, 512Ki or 10Mi, got ${JSON.stringify(text)}`);
  return n;
}
