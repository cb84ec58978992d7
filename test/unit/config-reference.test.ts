/**
 * README.md's configuration reference is generated from the WorkerPool CRD
 * (src/docs/config-reference.ts, run by `npm run synth`); it must equal a
 * fresh generation, so the README cannot drift from the schema users install.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { BEGIN_MARKER, END_MARKER, README_PATH, renderConfigReference, replaceSection, synthesizedWorkerPoolCrd } from '../../src/docs/config-reference.js';

interface SchemaNode {
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
}

/** Every field path below a schema node, as the reference writes them. */
function fieldPaths(node: SchemaNode, path: string): string[] {
  const out: string[] = [];
  for (const [name, child] of Object.entries(node.properties ?? {})) {
    const childPath = `${path}.${name}`;
    out.push(childPath, ...fieldPaths(child, childPath));
    if (child.items) out.push(...fieldPaths(child.items, `${childPath}[]`));
  }
  return out;
}

describe('the configuration reference in README.md', () => {
  const readme = readFileSync(README_PATH, 'utf8');
  const fresh = renderConfigReference();

  test('equals a fresh generation from the CRD (run `npm run synth` when this fails)', () => {
    expect(readme).toContain(BEGIN_MARKER);
    expect(readme).toContain(END_MARKER);
    expect(replaceSection(readme, fresh)).toBe(readme);
  });

  test('lists every spec field of the CRD with its description', () => {
    const spec = synthesizedWorkerPoolCrd().versions[0]?.schema.openAPIV3Schema.properties?.spec as SchemaNode;
    const paths = fieldPaths(spec, 'spec');
    expect(paths.length).toBeGreaterThan(60);
    for (const path of paths) expect(fresh, path).toContain(`| \`${path}\``);
    expect(fresh).toMatch(/\| `spec\.poolSize` \| integer \| `1` \| Number of workers/);
    expect(fresh).toContain('spec.token and spec.privateKey must be set together');
  });

  test('replaces only what is between the markers, and refuses a README without them', () => {
    const doc = `intro\n${BEGIN_MARKER}\nold\n${END_MARKER}\noutro\n`;
    expect(replaceSection(doc, 'new\n')).toBe(`intro\n${BEGIN_MARKER}\nnew\n${END_MARKER}\noutro\n`);
    expect(() => replaceSection('no markers', 'x')).toThrow(/must contain the markers/);
  });
});
