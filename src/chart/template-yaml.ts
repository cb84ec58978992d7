/**
 * Writes a synthesized object as the text of a Helm template: plain YAML,
 * except where a `Hole` stands, which writes template lines of its own at
 * the right indentation (a value, an optional block, list items, ...), and
 * except for sentinel strings, which become template expressions.
 */

/** What a hole knows of where it stands. */
export interface HolePlace {
  /** Indentation of the key (or of the `-` of a list item). */
  readonly indent: string;
  /** The map key it is the value of; undefined for a list item. */
  readonly key?: string;
}

/** Template lines standing in for a value. */
export class Hole {
  constructor(readonly render: (place: HolePlace) => string[]) {}
}

/** `key: {{ expr }}`: a scalar from the values. */
export function valueHole(expr: string): Hole {
  return new Hole(({ indent, key }) => [`${indent}${key === undefined ? '- ' : `${key}: `}{{ ${expr} }}`]);
}

/** `key:` followed by the YAML of `expr`, left out when `expr` is empty (`with`); `always` writes it even then. */
export function blockHole(expr: string, options: { always?: boolean } = {}): Hole {
  return new Hole(({ indent, key }) => {
    if (key === undefined) throw new Error('a block hole stands for a map value');
    const width = indent.length + 2;
    return options.always === true
      ? [`${indent}${key}:`, `${indent}  {{- toYaml ${expr} | nindent ${width} }}`]
      : [`${indent}{{- with ${expr} }}`, `${indent}${key}:`, `${indent}  {{- toYaml . | nindent ${width} }}`, `${indent}{{- end }}`];
  });
}

/** The entries of the map `expr`, merged into the map the hole stands in (its key is not written). */
export function mergeHole(expr: string): Hole {
  return new Hole(({ indent }) => [`${indent}{{- with ${expr} }}`, `${indent}{{- toYaml . | nindent ${indent.length} }}`, `${indent}{{- end }}`]);
}

/** `value` written as usual, but only when the template condition holds. */
export function whenHole(condition: string, value: unknown): Hole {
  return new Hole((place) => [
    `${place.indent}{{- if ${condition} }}`,
    ...(place.key === undefined ? emitItem(place.indent, value) : emitEntry(place, value)),
    `${place.indent}{{- end }}`,
  ]);
}

/** Template lines given whole, each prefixed with the indentation. */
export function linesHole(lines: readonly string[]): Hole {
  return new Hole(({ indent }) => lines.map((l) => `${indent}${l}`));
}

/** Sentinel strings in the synthesized objects and the template expressions they become. */
export type Sentinels = ReadonlyMap<string, string>;

// YAML 1.1 (which Helm's parser speaks) reads these as booleans or null.
const YAML11_WORDS = /^(y|yes|n|no|true|false|on|off|null|~)$/i;
const PLAIN = /^[A-Za-z][-A-Za-z0-9_./]*$/;

function scalar(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value !== 'string') throw new Error(`not a scalar: ${JSON.stringify(value)}`);
  if (value.includes('{{') || value.includes('}}')) throw new Error(`a string of the object holds template delimiters: ${JSON.stringify(value)}`);
  return PLAIN.test(value) && !YAML11_WORDS.test(value) ? value : JSON.stringify(value);
}

function key(name: string): string {
  return PLAIN.test(name) && !YAML11_WORDS.test(name) ? name : JSON.stringify(name);
}

function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Hole);
}

function emitEntry(place: HolePlace, value: unknown): string[] {
  const { indent } = place;
  const head = place.key === undefined ? `${indent}-` : `${indent}${key(place.key)}:`;
  if (value instanceof Hole) return value.render(place);
  if (Array.isArray(value)) {
    if (value.length === 0) return [`${head} []`];
    return [head, ...value.flatMap((item) => emitItem(`${indent}  `, item))];
  }
  if (isMap(value)) {
    if (Object.keys(value).length === 0) return [`${head} {}`];
    return [head, ...emitMap(`${indent}  `, value)];
  }
  return [`${head} ${scalar(value)}`];
}

function emitItem(indent: string, item: unknown): string[] {
  if (item instanceof Hole) return item.render({ indent });
  if (isMap(item) && Object.keys(item).length > 0) {
    // The item's first key carries its "- "; a plain entry goes first (key order means nothing in YAML).
    const entries = Object.entries(item);
    const plain = entries.findIndex(([, v]) => !(v instanceof Hole));
    if (plain > 0) entries.unshift(...entries.splice(plain, 1));
    const lines = emitMap(`${indent}  `, Object.fromEntries(entries));
    const first = lines[0] ?? '';
    if (!first.startsWith(`${indent}  `) || first.trimStart().startsWith('{{')) throw new Error(`a list item's first entry cannot be a hole: ${first}`);
    return [`${indent}- ${first.slice(indent.length + 2)}`, ...lines.slice(1)];
  }
  if (Array.isArray(item)) throw new Error('lists of lists are not written');
  return emitEntry({ indent }, item);
}

function emitMap(indent: string, map: Record<string, unknown>): string[] {
  return Object.entries(map).flatMap(([k, v]) => emitEntry({ indent, key: k }, v));
}

/** The object as template text, sentinels replaced. */
export function templateText(object: Record<string, unknown>, sentinels: Sentinels): string {
  let text = emitMap('', object).join('\n');
  for (const [sentinel, expr] of sentinels) text = text.split(sentinel).join(expr);
  return `${text}\n`;
}
