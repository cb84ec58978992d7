/**
 * Uses the constructs the way another cdk8s app would: through the package's
 * entry point, from compiled JavaScript, in a folder of its own.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const app = mkdtempSync(join(tmpdir(), 'kwc-outside-app-'));

beforeAll(() => {
  execFileSync(join(root, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.build.json'], { cwd: root, stdio: 'pipe' });
  mkdirSync(join(app, 'node_modules'));
  // The app's own dependencies, plus this project installed as a package.
  for (const dep of ['cdk8s', 'constructs']) symlinkSync(join(root, 'node_modules', dep), join(app, 'node_modules', dep));
  symlinkSync(root, join(app, 'node_modules', 'kube-workerpool-controller'));
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'platform-app', type: 'module', private: true }));
  writeFileSync(
    join(app, 'main.js'),
    `import { App, Chart } from 'cdk8s';
import { WorkerPoolController, WorkerPool } from 'kube-workerpool-controller';

const app = new App({ outdir: 'out' });
const chart = new Chart(app, 'platform', { disableResourceNameHashes: true });
new WorkerPoolController(chart, 'controller', { image: 'registry.example.com/kwc:9.9.9', watchNamespaces: ['ci'], includeCrds: false });
new WorkerPool(chart, 'pool', { name: 'ci-pool', namespace: 'ci', poolSize: 3, secretName: 'ci-pool-credentials', spec: { keepSuccessfulPods: true } });
app.synth();
`,
  );
}, 120_000);
afterAll(() => rmSync(app, { recursive: true, force: true }));

test('an outside cdk8s app imports the constructs from the package and synthesizes them', () => {
  execFileSync(process.execPath, ['main.js'], { cwd: app, stdio: 'pipe' });
  const yaml = readFileSync(join(app, 'out', 'platform.k8s.yaml'), 'utf8');
  expect(yaml).toContain('image: registry.example.com/kwc:9.9.9');
  expect(yaml).toContain('--namespaces=ci');
  expect(yaml).not.toContain('kind: CustomResourceDefinition');
  expect(yaml).toMatch(/kind: WorkerPool\nmetadata:\n {2}name: ci-pool\n {2}namespace: ci\nspec:\n {2}keepSuccessfulPods: true\n {2}poolSize: 3/);
  expect(yaml).toMatch(/kind: Role\nmetadata:\n {2}name: kube-workerpool-controller-manager\n {2}namespace: ci/);
});
