/**
 * Uses the package the way other apps do: packed by `npm pack`, unpacked into
 * an outside app's node_modules next to the packages it declares (dependencies
 * and required peers, taken from this project's node_modules, so no network)
 * and nothing else: none of the optional peers (the packages only the
 * controller needs, and @kubernetes/client-node) until a test adds them.
 * The cdk8s app that `cdk8s init typescript-app` makes is in
 * cdk8s-init-app.test.ts.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { packageJson, packPackage, repoRoot as root, type PackedPackage } from '../support/package.js';

const work = mkdtempSync(join(tmpdir(), 'kwc-outside-app-'));
const app = join(work, 'app');
const installed = join(app, 'node_modules', 'kube-workerpool-controller');
let packed: PackedPackage;

function link(name: string): void {
  const to = join(app, 'node_modules', name);
  mkdirSync(dirname(to), { recursive: true });
  symlinkSync(join(root, 'node_modules', name), to);
}

beforeAll(() => {
  packed = packPackage(work);
  mkdirSync(installed, { recursive: true });
  execFileSync('tar', ['xzf', packed.tarball, '-C', installed, '--strip-components=1']);
  const pkg = packageJson();
  const required = Object.keys(pkg.peerDependencies ?? {}).filter((name) => pkg.peerDependenciesMeta?.[name]?.optional !== true);
  for (const name of [...Object.keys(pkg.dependencies), ...required, '@types/node']) link(name);
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
}, 300_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

test('an outside cdk8s app imports the constructs from the package and synthesizes them', () => {
  execFileSync(process.execPath, ['main.js'], { cwd: app, stdio: 'pipe' });
  const yaml = readFileSync(join(app, 'out', 'platform.k8s.yaml'), 'utf8');
  expect(yaml).toContain('image: registry.example.com/kwc:9.9.9');
  expect(yaml).toContain('--namespaces=ci');
  expect(yaml).not.toContain('kind: CustomResourceDefinition');
  expect(yaml).toMatch(/kind: WorkerPool\nmetadata:\n {2}name: ci-pool\n {2}namespace: ci\nspec:\n {2}keepSuccessfulPods: true\n {2}poolSize: 3/);
  expect(yaml).toMatch(/kind: Role\nmetadata:\n {2}labels:\n(?: {4}.*\n)+ {2}name: kube-workerpool-controller-manager\n {2}namespace: ci/);
});

describe('from CommonJS and from ES modules', () => {
  /** One program, written once for require() and once for import. */
  const body = (outdir: string) => `
const app = new App({ outdir: '${outdir}' });
const chart = new Chart(app, 'platform', { disableResourceNameHashes: true });
new WorkerPoolController(chart, 'controller', { includeCrds: false, watchNamespaces: ['ci'] });
new WorkerPool(chart, 'pool', {
  name: 'ci-pool',
  namespace: 'ci',
  secretName: 'ci-pool-credentials',
  spec: {
    failedPodsHistoryTTL: '24h',
    pod: {
      workerContainer: { resources: { requests: { cpu: '500m', memory: k8s.Quantity.fromString('1Gi') } } },
      workspaceVolume: { name: 'workspace', emptyDir: { sizeLimit: '10Gi' } },
      additionalSidecarContainers: [{ name: 'dind', image: 'docker:dind', ports: [{ containerPort: 2375, hostIp: '127.0.0.1' }] }],
    },
  },
});
app.synth();
console.log(JSON.stringify({ condition: api.PoolCondition.Ready, label: api.LABEL_WORKERPOOL }));
`;

  beforeAll(() => {
    writeFileSync(
      join(app, 'program.cjs'),
      `const { App, Chart } = require('cdk8s');
const { k8s } = require('cdk8s-plus-28');
const { WorkerPoolController, WorkerPool, api } = require('kube-workerpool-controller');
console.log(require.resolve('kube-workerpool-controller'));
${body('out-cjs')}`,
    );
    writeFileSync(
      join(app, 'program.mjs'),
      `import { App, Chart } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { WorkerPoolController, WorkerPool, api } from 'kube-workerpool-controller';
console.log(import.meta.resolve('kube-workerpool-controller'));
${body('out-esm')}`,
    );
  });

  test('require() loads the CommonJS build, also where Node cannot require ES modules', () => {
    // --no-experimental-require-module: as on the Node 20/22 lines without require(esm), where an ES-module-only package fails with ERR_REQUIRE_ESM.
    const out = execFileSync(process.execPath, ['--no-experimental-require-module', 'program.cjs'], { cwd: app, encoding: 'utf8' });
    const [entry, names] = out.trim().split('\n');
    expect(entry).toBe(join(installed, 'lib', 'cjs', 'constructs', 'index.js'));
    expect(JSON.parse(names ?? '')).toEqual({ condition: 'Ready', label: 'workers.spacelift.io/workerpool' });
    const yaml = readFileSync(join(app, 'out-cjs', 'platform.k8s.yaml'), 'utf8');
    expect(yaml).toContain('failedPodsHistoryTTL: 24h');
    expect(yaml).toMatch(/requests:\n\s+cpu: 500m\n\s+memory: 1Gi/);
    expect(yaml).toMatch(/emptyDir:\n\s+sizeLimit: 10Gi/);
    expect(yaml).toContain('hostIP: 127.0.0.1');
  });

  test('import loads the ES module build, and both builds write the same manifests', () => {
    const out = execFileSync(process.execPath, ['program.mjs'], { cwd: app, encoding: 'utf8' });
    expect(out.trim().split('\n')[0]).toBe(`file://${join(installed, 'lib', 'constructs', 'index.js')}`);
    execFileSync(process.execPath, ['--no-experimental-require-module', 'program.cjs'], { cwd: app });
    const esm = readFileSync(join(app, 'out-esm', 'platform.k8s.yaml'), 'utf8');
    expect(esm).toContain('failedPodsHistoryTTL: 24h');
    expect(esm).toBe(readFileSync(join(app, 'out-cjs', 'platform.k8s.yaml'), 'utf8'));
  });
});

describe('types', () => {
  const program = (importLine: string) => `${importLine}

const chart = new Chart(new App(), 'types');
new WorkerPool(chart, 'pool', {
  name: 'p',
  spec: {
    failedPodsHistoryTTL: '24h',
    pod: {
      workerContainer: { resources: { limits: { cpu: '2', memory: k8s.Quantity.fromString('4Gi') } } },
      volumes: [{ name: 'cache', emptyDir: { sizeLimit: '1Gi' } }],
      affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [] } } },
    },
  },
});
// @ts-expect-error the TTL props are spelled as in the CRD
new WorkerPool(chart, 'old', { name: 'p', spec: { failedPodsHistoryTtl: '24h' } });
// @ts-expect-error embedded objects have Kubernetes types, not any
new WorkerPool(chart, 'bad', { name: 'p', spec: { pod: { volumes: [{ name: 'v', emptyDir: { sizeLimit: true } }] } } });
const ready: 'Ready' = api.PoolCondition.Ready;
export { ready };
`;

  function typecheck(dir: string, compilerOptions: Record<string, unknown>, file: string, source: string, type?: 'module' | 'commonjs'): void {
    const project = join(app, dir);
    mkdirSync(project);
    if (type !== undefined) writeFileSync(join(project, 'package.json'), JSON.stringify({ type }));
    writeFileSync(join(project, file), source);
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { strict: true, noEmit: true, skipLibCheck: false, types: ['node'], target: 'ES2022', ...compilerOptions }, files: [file] }),
    );
    const result = spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', project], { encoding: 'utf8' });
    expect(result.stdout + result.stderr).toBe('');
    expect(result.status).toBe(0);
  }

  test('the optional @kubernetes/client-node is not installed next to the package', () => {
    expect(() => createRequire(join(app, 'x.js')).resolve('@kubernetes/client-node')).toThrow(/Cannot find module/);
  });

  test('an ES module app (module nodenext) gets the types, with no library errors', () => {
    typecheck('types-esm', { module: 'nodenext', moduleResolution: 'nodenext' }, 'main.ts', program(`import { App, Chart } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { WorkerPool, api } from 'kube-workerpool-controller';`), 'module');
  }, 60_000);

  test('a CommonJS app (module nodenext, require condition) gets the types', () => {
    typecheck('types-cjs', { module: 'nodenext', moduleResolution: 'nodenext' }, 'main.cts', program(`import { App, Chart } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { WorkerPool, api } from 'kube-workerpool-controller';`), 'commonjs');
  }, 60_000);

  test('an app on the old node10 resolution (no exports map) gets the types', () => {
    typecheck('types-node10', { module: 'commonjs', moduleResolution: 'node10', esModuleInterop: true }, 'main.ts', program(`import { App, Chart } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { WorkerPool, api } from 'kube-workerpool-controller';`), 'commonjs');
  }, 60_000);
});

describe('the controller in the package', () => {
  const bin = () => join(installed, 'lib', 'src', 'controller', 'cli', 'bin.js');
  /** The optional peer dependencies the controller needs to start (client-node only for some kubeconfigs). */
  const controllerPackages = () => {
    const pkg = packageJson();
    return Object.keys(pkg.peerDependenciesMeta ?? {}).filter((name) => name !== '@kubernetes/client-node');
  };

  test('is the package\'s command', () => {
    expect((JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as { bin: Record<string, string> }).bin).toEqual({
      'kube-workerpool-controller': './lib/src/controller/cli/bin.js',
    });
    expect(readFileSync(bin(), 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
  });

  test('without the packages only it needs, its command names the command that installs them', () => {
    const result = spawnSync(process.execPath, [bin(), '--help'], { cwd: app, encoding: 'utf8' });
    expect(result.status).toBe(1);
    const peers = packageJson().peerDependencies ?? {};
    const install = controllerPackages().map((name) => `${name}@${peers[name]}`).join(' ');
    expect(controllerPackages().length).toBeGreaterThan(0);
    expect(result.stderr).toBe(
      `kube-workerpool-controller: the controller needs ${controllerPackages().join(', ')}, optional peer dependencies of the package (the constructs alone do not); install them next to it: npm install ${install}\n`,
    );
  });

  describe('with them installed', () => {
    beforeAll(() => {
      for (const name of controllerPackages()) link(name);
    });

    test('runs', () => {
      const out = execFileSync(process.execPath, [bin(), '--help'], { cwd: app, encoding: 'utf8' });
      expect(out).toContain('Usage: kube-workerpool-controller [flags]');
    });

    test('names the optional @kubernetes/client-node when a kubeconfig needs it', () => {
      const kubeconfig = join(work, 'exec-kubeconfig.yaml');
      writeFileSync(
        kubeconfig,
        `apiVersion: v1
kind: Config
current-context: eks
clusters: [{ name: eks, cluster: { server: "https://127.0.0.1:1" } }]
users: [{ name: eks, user: { exec: { apiVersion: client.authentication.k8s.io/v1beta1, command: aws } } }]
contexts: [{ name: eks, context: { cluster: eks, user: eks } }]
`,
      );
      const result = spawnSync(process.execPath, [bin()], { cwd: app, encoding: 'utf8', env: { ...process.env, KUBECONFIG: kubeconfig }, timeout: 30_000 });
      expect(result.status).toBe(1);
      const range = packageJson().peerDependencies?.['@kubernetes/client-node'];
      expect(result.stderr).toContain(
        `kubeconfig ${kubeconfig}, context eks: an exec or auth-provider user, or a proxy-url, needs the optional package @kubernetes/client-node, which is not installed; npm install @kubernetes/client-node@${range}`,
      );
    });
  });
});

test('every package the published code imports is declared, and the library entry imports only dependencies and required peers', () => {
  const pkg = packageJson();
  const peers = pkg.peerDependencies ?? {};
  const required = new Set([...Object.keys(pkg.dependencies), ...Object.keys(peers).filter((name) => pkg.peerDependenciesMeta?.[name]?.optional !== true)]);
  const imported = (dir: string): Set<string> => {
    const names = new Set<string>();
    for (const file of readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.js'))) {
      for (const m of readFileSync(join(dir, file), 'utf8').matchAll(/(?:from |import\(|require\()['"]([^'"./][^'"]*)['"]/g)) {
        const specifier = m[1] as string;
        if (specifier.startsWith('node:')) continue;
        names.add(specifier.split('/').slice(0, specifier.startsWith('@') ? 2 : 1).join('/'));
      }
    }
    return names;
  };
  const library = imported(join(installed, 'lib', 'cjs'));
  expect([...library].sort()).toEqual(['cdk8s', 'cdk8s-plus-28', 'constructs']);
  expect([...library].filter((name) => !required.has(name))).toEqual([]);
  const all = imported(join(installed, 'lib'));
  expect([...all].filter((name) => !required.has(name) && peers[name] === undefined)).toEqual([]);
  expect(all.has('mqtt')).toBe(true);
});

test('the package holds the constructs, the controller and the install manifest, and nothing else of the repository', () => {
  const files = packed.files;
  for (const file of ['lib/constructs/index.js', 'lib/constructs/index.d.ts', 'lib/cjs/package.json', 'lib/cjs/constructs/index.js', 'lib/cjs/constructs/index.d.ts', 'lib/src/controller/cli/main.js', 'dist/manifests.yaml']) {
    expect(files).toContain(file);
  }
  expect(files.filter((f) => /^lib\/(src\/(backend|cluster|demo|docs)\/|imports\/|constructs\/main\.|cjs\/src\/(backend|cluster|demo|docs)\/)|^(src|test|bench|imports|constructs)\//.test(f))).toEqual([]);
  expect(JSON.parse(readFileSync(join(installed, 'lib', 'cjs', 'package.json'), 'utf8'))).toEqual({ type: 'commonjs' });
  const manifests = createRequire(join(app, 'x.js')).resolve('kube-workerpool-controller/manifests.yaml');
  expect(readFileSync(manifests, 'utf8')).toBe(readFileSync(join(root, 'dist', 'manifests.yaml'), 'utf8'));
});
