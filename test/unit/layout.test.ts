/**
 * The layout's rules, as the README's architecture section draws them: which
 * folder may import which, and no import cycles. Read from the sources, so a
 * new import that breaks a rule fails here with the files named.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(root, dir))) {
    const path = join(dir, entry);
    if (statSync(join(root, path)).isDirectory()) out.push(...sources(path));
    else if (path.endsWith('.ts') && !path.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

/** Every relative import of a file (static, `export ... from`, dynamic), as repo paths of .ts files. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(root, file), 'utf8');
  const pattern = /(?:^|\s)(?:import|export)\s[^;]*?from\s+'(\.{1,2}\/[^']+)'|import\(\s*'(\.{1,2}\/[^']+)'\s*\)|^import\s+'(\.{1,2}\/[^']+)'/gm;
  const specs = [...text.matchAll(pattern)].map((m) => m[1] ?? m[2] ?? m[3] ?? '');
  return specs.map((spec) => relative(root, resolve(root, dirname(file), spec)).replace(/\.js$/, '.ts'));
}

const files = [...sources('src'), ...sources('constructs')];
const graph = new Map(files.map((f) => [f, importsOf(f)]));

/** Folders whose code the npm package ships, and those it must never reach. */
const PUBLISHED = ['src/api/', 'src/runtime/', 'src/protocol/', 'src/controller/', 'constructs/'];
const UNPUBLISHED = ['src/backend/', 'src/cluster/', 'src/demo/', 'src/docs/', 'src/chart/'];

function violations(from: string, allowed: readonly string[]): string[] {
  const out: string[] = [];
  for (const [file, deps] of graph) {
    if (!file.startsWith(from)) continue;
    for (const dep of deps) {
      if (!allowed.some((prefix) => dep.startsWith(prefix)) && !dep.startsWith('imports/')) out.push(`${file} -> ${dep}`);
    }
  }
  return out;
}

describe('the layout', () => {
  it('finds the sources and their imports', () => {
    expect(graph.size).toBeGreaterThan(80);
    expect(graph.get('src/controller/manager.ts')).toContain('src/controller/pool/controller.ts');
  });

  it('keeps the Kubernetes runtime free of domain code', () => {
    expect(violations('src/runtime/', ['src/runtime/'])).toEqual([]);
  });

  it('keeps the API module on the runtime alone', () => {
    expect(violations('src/api/', ['src/api/', 'src/runtime/'])).toEqual([]);
  });

  it('keeps the protocol independent of the controller and the backend', () => {
    expect(violations('src/protocol/', ['src/protocol/'])).toEqual([]);
  });

  it('builds the controller from the API, the runtime and the protocol only', () => {
    expect(violations('src/controller/', ['src/controller/', 'src/api/', 'src/runtime/', 'src/protocol/'])).toEqual([]);
  });

  it('never reaches unpublished code from published code', () => {
    const bad = [...graph].flatMap(([file, deps]) =>
      PUBLISHED.some((p) => file.startsWith(p)) ? deps.filter((d) => UNPUBLISHED.some((u) => d.startsWith(u))).map((d) => `${file} -> ${d}`) : [],
    );
    expect(bad).toEqual([]);
  });

  it('has no import cycles', () => {
    const cycles: string[] = [];
    const state = new Map<string, 'visiting' | 'done'>();
    const stack: string[] = [];
    const visit = (file: string): void => {
      state.set(file, 'visiting');
      stack.push(file);
      for (const dep of graph.get(file) ?? []) {
        if (!graph.has(dep)) continue;
        if (state.get(dep) === 'visiting') cycles.push([...stack.slice(stack.indexOf(dep)), dep].join(' -> '));
        else if (state.get(dep) === undefined) visit(dep);
      }
      stack.pop();
      state.set(file, 'done');
    };
    for (const file of graph.keys()) if (state.get(file) === undefined) visit(file);
    expect(cycles).toEqual([]);
  });
});
