/**
 * The README's configuration reference, generated from the WorkerPool CRD that
 * the constructs synthesize, so that it cannot drift from the schema users
 * install. `npm run synth` runs this file; a unit test fails when README.md's
 * section differs from a fresh generation.
 *
 *   tsx src/docs/config-reference.ts           rewrite the section of README.md
 *   tsx src/docs/config-reference.ts --check   exit 1 if it is out of date
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Chart, Testing } from 'cdk8s';
import { WorkerPoolCrd } from '../../constructs/workerpool-crd.js';
import { repoRoot } from '../cluster/binaries.js';

export const BEGIN_MARKER = '<!-- BEGIN GENERATED config-reference: src/docs/config-reference.ts writes this section from the CRD (npm run synth); do not edit by hand -->';
export const END_MARKER = '<!-- END GENERATED config-reference -->';

interface Node {
  type?: string;
  description?: string;
  properties?: Record<string, Node>;
  required?: string[];
  items?: Node;
  additionalProperties?: Node;
  anyOf?: Node[];
  enum?: string[];
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  default?: unknown;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-validations'?: { rule: string; message: string }[];
}

interface CrdVersion {
  name: string;
  schema: { openAPIV3Schema: Node };
  additionalPrinterColumns?: { name: string; jsonPath: string }[];
}

/** The WorkerPool CRD exactly as the constructs synthesize it into dist/manifests.yaml. */
export function synthesizedWorkerPoolCrd(): { group: string; names: { kind: string }; versions: CrdVersion[] } {
  const chart = new Chart(Testing.app(), 'docs', { disableResourceNameHashes: true });
  new WorkerPoolCrd(chart, 'crd');
  const [crd] = Testing.synth(chart) as { spec: { group: string; names: { kind: string }; versions: CrdVersion[] } }[];
  if (crd === undefined) throw new Error('WorkerPoolCrd synthesized nothing');
  return crd.spec;
}

function typeOf(node: Node): string {
  if (node['x-kubernetes-int-or-string'] === true) return 'quantity';
  if (node['x-kubernetes-preserve-unknown-fields'] === true) return 'object';
  switch (node.type) {
    case 'array':
      return `[]${node.items ? typeOf(node.items) : 'any'}`;
    case 'object':
      return node.additionalProperties ? `map[string]${typeOf(node.additionalProperties)}` : 'object';
    case undefined:
      return 'any';
    default:
      return node.type;
  }
}

function constraints(node: Node): string[] {
  const out: string[] = [];
  if (node.enum) out.push(`one of ${node.enum.map((v) => `\`${v}\``).join(', ')}`);
  if (node.minimum !== undefined && node.maximum !== undefined) out.push(`${node.minimum} to ${node.maximum}`);
  else if (node.minimum !== undefined) out.push(`at least ${node.minimum}`);
  else if (node.maximum !== undefined) out.push(`at most ${node.maximum}`);
  if (node.minLength !== undefined && node.minLength > 0) out.push(`not empty`);
  if (node.maxLength !== undefined && node.maxLength < 64) out.push(`at most ${node.maxLength} characters`);
  return out;
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n+/g, ' ');
}

interface Row {
  path: string;
  type: string;
  required: boolean;
  default: string;
  description: string;
}

function walk(node: Node, path: string, required: boolean, rows: Row[]): void {
  const notes = constraints(node);
  rows.push({
    path,
    type: typeOf(node),
    required,
    default: node.default === undefined ? '' : `\`${JSON.stringify(node.default)}\``,
    description: [node.description ?? '', ...(notes.length > 0 ? [`(${notes.join('; ')})`] : [])].join(' ').trim(),
  });
  // An array of objects with known fields lists them as `path[].field`.
  const holder = node.type === 'array' ? node.items : node;
  const prefix = node.type === 'array' ? `${path}[]` : path;
  const requiredKids = new Set(holder?.required ?? []);
  for (const [name, child] of Object.entries(holder?.properties ?? {})) walk(child, `${prefix}.${name}`, requiredKids.has(name), rows);
  if (node.type === 'object' && node.additionalProperties?.properties) {
    walk(node.additionalProperties, `${path}.<key>`, false, rows);
  }
}

/** Top-level fields in the order a reader needs them (the synthesized CRD sorts keys alphabetically); the rest follow alphabetically, `pod` last. */
const FIRST = ['poolSize', 'token', 'privateKey'];
const LAST = ['pod'];

function rank(name: string): number {
  if (FIRST.includes(name)) return FIRST.indexOf(name) - FIRST.length;
  if (LAST.includes(name)) return 1 + LAST.indexOf(name);
  return 0;
}

function rowsOf(node: Node, path: string): Row[] {
  const rows: Row[] = [];
  const names = Object.keys(node.properties ?? {}).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  for (const name of names) walk(node.properties?.[name] as Node, `${path}.${name}`, (node.required ?? []).includes(name), rows);
  return rows;
}

function table(rows: Row[], withDefault: boolean): string {
  const header = withDefault ? '| Field | Type | Default | Description |\n| --- | --- | --- | --- |' : '| Field | Type | Description |\n| --- | --- | --- |';
  return [
    header,
    ...rows.map((r) => {
      const field = `\`${r.path}\`${r.required ? ' (required)' : ''}`;
      return withDefault ? `| ${field} | ${r.type} | ${r.default} | ${cell(r.description)} |` : `| ${field} | ${r.type} | ${cell(r.description)} |`;
    }),
  ].join('\n');
}

/** The Markdown between the markers (without them). */
export function renderConfigReference(): string {
  const crd = synthesizedWorkerPoolCrd();
  const version = crd.versions[0];
  if (version === undefined) throw new Error('the WorkerPool CRD has no version');
  const root = version.schema.openAPIV3Schema;
  const spec = root.properties?.spec;
  const status = root.properties?.status;
  if (spec === undefined || status === undefined) throw new Error('the WorkerPool schema has no spec or status');
  const rules = [...(root['x-kubernetes-validations'] ?? []), ...(spec['x-kubernetes-validations'] ?? [])];
  const lines = [
    `\`apiVersion: ${crd.group}/${version.name}\`, \`kind: ${crd.names.kind}\`. ${spec.description ?? ''}`,
    '',
    'Fields typed `object` without sub-fields below are Kubernetes objects taken whole, with the fields they have in a Pod spec; the controller checks the run Pod built from them with a server-side dry run and reports problems in the `PodTemplateValid` condition. `quantity` is a Kubernetes quantity such as `500m` or `4Gi`.',
    '',
    table(rowsOf(spec, 'spec'), true),
    '',
    'Rules the API server enforces when you apply a WorkerPool:',
    '',
    ...rules.map((r) => `- ${r.message}`),
    '',
    `Status, written by the controller (\`kubectl get workerpools\` shows ${(version.additionalPrinterColumns ?? []).map((c) => c.name.toUpperCase()).join(', ')}):`,
    '',
    table(rowsOf(status, 'status'), false),
  ];
  return `${lines.join('\n')}\n`;
}

/** `readme` with its generated section replaced; fails when the markers are missing. */
export function replaceSection(readme: string, section: string): string {
  const begin = readme.indexOf(BEGIN_MARKER);
  const end = readme.indexOf(END_MARKER);
  if (begin < 0 || end < begin) throw new Error(`README.md must contain the markers\n${BEGIN_MARKER}\n${END_MARKER}`);
  return `${readme.slice(0, begin + BEGIN_MARKER.length)}\n${section}${readme.slice(end)}`;
}

export const README_PATH = join(repoRoot, 'README.md');

function main(): void {
  const check = process.argv.includes('--check');
  const current = readFileSync(README_PATH, 'utf8');
  const fresh = replaceSection(current, renderConfigReference());
  if (fresh === current) {
    process.stdout.write('README.md configuration reference is up to date\n');
    return;
  }
  if (check) {
    process.stderr.write('README.md configuration reference differs from the CRD; run: npm run synth\n');
    process.exitCode = 1;
    return;
  }
  writeFileSync(README_PATH, fresh);
  process.stdout.write('README.md configuration reference regenerated from the WorkerPool CRD\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main();
