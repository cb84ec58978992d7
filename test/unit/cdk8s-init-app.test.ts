/**
 * The package in the project a cdk8s user starts from: `cdk8s init
 * typescript-app` (CommonJS TypeScript, jest with ts-jest, ts-node for synth,
 * @types/node 14, lib es2016, no skipLibCheck, cdk8s-plus-33). The packed
 * tarball is installed with npm from the registry as a user would, the
 * constructs are used in the project's main.ts and its jest test, and the
 * project's own scripts compile it, test it and synthesize it.
 *
 * Slow: the generated project is cached per cdk8s-cli version (see
 * test/support/cdk8s-init.ts); each run copies it and installs the tarball.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { cdk8sInitProject } from '../support/cdk8s-init.js';
import { packPackage } from '../support/package.js';

const work = mkdtempSync(join(tmpdir(), 'kwc-cdk8s-init-'));
const project = join(work, 'platform-app');

/** Runs one of the project's npm scripts; the error carries its output. */
function npm(args: string[]): string {
  try {
    return execFileSync('npm', [...args, '--no-audit', '--no-fund'], {
      cwd: project,
      encoding: 'utf8',
      stdio: 'pipe',
      env: { ...process.env, CDK8S_CHECK_UPGRADE: 'false', CI: 'true' },
      maxBuffer: 64 << 20,
    });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    throw new Error(`npm ${args.join(' ')} failed in ${project}:\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}

const MAIN = `import { Construct } from 'constructs';
import { App, Chart, ChartProps } from 'cdk8s';
import { k8s } from 'cdk8s-plus-33';
import { WorkerPool, WorkerPoolController } from 'kube-workerpool-controller';

export class MyChart extends Chart {
  constructor(scope: Construct, id: string, props: ChartProps = { }) {
    super(scope, id, props);

    new WorkerPoolController(this, 'controller', {
      image: 'registry.example.com/kube-workerpool-controller:1.2.3',
      watchNamespaces: ['ci'],
      includeCrds: false,
    });
    new WorkerPool(this, 'pool', {
      name: 'ci-pool',
      namespace: 'ci',
      poolSize: 2,
      secretName: 'ci-pool-credentials',
      spec: {
        failedPodsHistoryTTL: '24h',
        pod: {
          workerContainer: { resources: { requests: { cpu: '500m', memory: k8s.Quantity.fromString('1Gi') } } },
          workspaceVolume: { name: 'workspace', emptyDir: { sizeLimit: k8s.Quantity.fromString('10Gi') } },
          additionalSidecarContainers: [{
            name: 'dind',
            image: 'docker:dind',
            ports: [{ containerPort: 2375, hostIp: '127.0.0.1' }],
            resources: { limits: { cpu: '1' } },
            readinessProbe: { tcpSocket: { port: k8s.IntOrString.fromNumber(2375) } },
          }],
        },
      },
    });
  }
}

const app = new App();
new MyChart(app, 'platform-app');
app.synth();
`;

const MAIN_TEST = `import { Testing } from 'cdk8s';
import { api } from 'kube-workerpool-controller';
import { MyChart } from './main';

describe('platform-app', () => {
  const objects: any[] = Testing.synth(new MyChart(Testing.app(), 'test-chart'));
  const find = (kind: string, name: string) => {
    const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
    if (found === undefined) throw new Error('no ' + kind + ' ' + name);
    return found;
  };

  test('the WorkerPool has the CRD field names and plain JSON values', () => {
    const pool = find(api.WORKERPOOL_KIND, 'ci-pool');
    expect(pool.apiVersion).toBe(api.API_GROUP_VERSION);
    expect(pool.spec).toEqual({
      poolSize: 2,
      failedPodsHistoryTTL: '24h',
      token: { secretKeyRef: { name: 'ci-pool-credentials', key: api.SECRET_KEY_TOKEN } },
      privateKey: { secretKeyRef: { name: 'ci-pool-credentials', key: api.SECRET_KEY_PRIVATE_KEY } },
      pod: {
        workerContainer: { resources: { requests: { cpu: '500m', memory: '1Gi' } } },
        workspaceVolume: { name: 'workspace', emptyDir: { sizeLimit: '10Gi' } },
        additionalSidecarContainers: [{
          name: 'dind',
          image: 'docker:dind',
          ports: [{ containerPort: 2375, hostIP: '127.0.0.1' }],
          resources: { limits: { cpu: '1' } },
          readinessProbe: { tcpSocket: { port: 2375 } },
        }],
      },
    });
  });

  test('the controller runs the given image and watches ci only', () => {
    const deployment = find('Deployment', 'kube-workerpool-controller');
    const [manager] = deployment.spec.template.spec.containers;
    expect(manager.image).toBe('registry.example.com/kube-workerpool-controller:1.2.3');
    expect(manager.args).toContain('--namespaces=ci');
    expect(objects.filter((o) => o.kind === 'CustomResourceDefinition')).toEqual([]);
  });

  test('jest loads the CommonJS build of the package', () => {
    expect(require.resolve('kube-workerpool-controller')).toMatch(/kube-workerpool-controller\\/lib\\/cjs\\/constructs\\/index\\.js$/);
  });
});
`;

/** Compiled by the project's \`tsc --build\` with the rest: the types must be the real ones under node10 resolution. */
const TYPES = `import { App, Chart } from 'cdk8s';
import { WorkerPool } from 'kube-workerpool-controller';

export function typeChecks(): void {
  const chart = new Chart(new App(), 'types');
  // @ts-expect-error the TTL props are spelled as in the CRD
  new WorkerPool(chart, 'old', { name: 'p', spec: { failedPodsHistoryTtl: '24h' } });
  // @ts-expect-error embedded objects have Kubernetes types, not any
  new WorkerPool(chart, 'bad', { name: 'p', spec: { pod: { affinity: { nodeAffinity: 'zone-a' } } } });
}
`;

let skipped: readonly string[] = [];

beforeAll(() => {
  const packed = packPackage(work);
  const init = cdk8sInitProject();
  skipped = init.skipped;
  execFileSync('cp', ['-a', init.dir, project]);
  npm(['install', packed.tarball]);
  writeFileSync(join(project, 'main.ts'), MAIN);
  writeFileSync(join(project, 'main.test.ts'), MAIN_TEST);
  writeFileSync(join(project, 'type-checks.ts'), TYPES);
  rmSync(join(project, '__snapshots__'), { recursive: true, force: true });
  rmSync(join(project, 'dist'), { recursive: true, force: true });
}, 900_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

test('the project is the one cdk8s init made (only its Kubernetes import, which needs GitHub, may be missing)', () => {
  const pkg = JSON.parse(readFileSync(join(project, 'package.json'), 'utf8')) as { scripts: Record<string, string>; dependencies: Record<string, string> };
  expect(pkg.scripts).toMatchObject({ compile: 'tsc --build', test: 'jest', synth: 'cdk8s synth' });
  expect(Object.keys(pkg.dependencies).sort()).toEqual(['cdk8s', 'cdk8s-plus-33', 'constructs', 'kube-workerpool-controller']);
  expect(['', 'npm run import']).toContain(skipped.join(','));
});

test('installing the tarball adds no second cdk8s or constructs and none of the optional or backend-only packages', () => {
  const modules = join(project, 'node_modules');
  for (const name of ['cdk8s', 'constructs']) {
    expect(existsSync(join(modules, name, 'package.json'))).toBe(true);
    expect(existsSync(join(modules, 'kube-workerpool-controller', 'node_modules', name))).toBe(false);
  }
  for (const name of ['@kubernetes/client-node', 'aedes']) expect(existsSync(join(modules, name))).toBe(false);
});

test('the project compiles (tsc --build, strict, no skipLibCheck, @types/node 14)', () => {
  npm(['run', 'compile']);
  expect(existsSync(join(project, 'main.js'))).toBe(true);
}, 300_000);

test("the project's jest test imports the package and passes", () => {
  const report = join(work, 'jest-report.json');
  npm(['test', '--', '--ci', `--json`, `--outputFile=${report}`]);
  expect(JSON.parse(readFileSync(report, 'utf8'))).toMatchObject({ success: true, numFailedTests: 0, numPassedTests: 3 });
}, 300_000);

test('cdk8s synth writes the manifests', () => {
  npm(['run', 'synth']);
  const objects = parseAllDocuments(readFileSync(join(project, 'dist', 'platform-app.k8s.yaml'), 'utf8')).map((d) => d.toJS() as { kind: string; spec: Record<string, unknown> });
  const pool = objects.find((o) => o.kind === 'WorkerPool');
  expect(pool?.spec).toMatchObject({
    failedPodsHistoryTTL: '24h',
    pod: { workerContainer: { resources: { requests: { cpu: '500m', memory: '1Gi' } } }, workspaceVolume: { emptyDir: { sizeLimit: '10Gi' } } },
  });
  expect(objects.map((o) => o.kind)).toContain('Deployment');
}, 300_000);
