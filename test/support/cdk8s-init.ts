/**
 * A project made by the real `cdk8s init typescript-app` of the cdk8s-cli this
 * repository pins (a devDependency), cached under .cache/cdk8s-init/ per
 * cdk8s-cli version, so that only the first run pays for its `npm install`.
 *
 * The template's post-init hook runs, in order: npm install, npm run import,
 * npm run compile, npm run test -- -u, npm run synth. Its `npm run import`
 * (`cdk8s import k8s`) downloads the Kubernetes schema from
 * raw.githubusercontent.com, and only the npm registry is reachable here; when
 * init stops at exactly that step, the remaining steps of the hook (read from
 * the template, not copied here) run as the hook would have run them. The
 * project then lacks only imports/k8s.ts, which the template's code does not
 * use. A project whose import did run is used as it is.
 */
import { execFileSync, execSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from './package.js';

const CLI = join(repoRoot, 'node_modules', 'cdk8s-cli');
const READY = '.kwc-ready.json';

export interface InitProject {
  readonly dir: string;
  readonly cdk8sCli: string;
  /** Steps of the template's hook that could not run here. */
  readonly skipped: readonly string[];
}

/** The commands of the template's post-init hook, in order. */
function hookSteps(): string[] {
  const hook = readFileSync(join(CLI, 'templates', 'typescript-app', '.hooks.sscaff.js'), 'utf8');
  return [...hook.matchAll(/execSync\('([^']+)'/g)].map((m) => m[1] as string);
}

export function cdk8sInitProject(): InitProject {
  const cdk8sCli = (JSON.parse(readFileSync(join(CLI, 'package.json'), 'utf8')) as { version: string }).version;
  const cacheRoot = join(repoRoot, '.cache', 'cdk8s-init');
  const cached = join(cacheRoot, `typescript-app-${cdk8sCli}`);
  if (existsSync(join(cached, READY))) {
    return { dir: cached, cdk8sCli, ...(JSON.parse(readFileSync(join(cached, READY), 'utf8')) as { skipped: string[] }) };
  }
  rmSync(cached, { recursive: true, force: true });
  mkdirSync(cacheRoot, { recursive: true });
  // Made outside the repository (TypeScript would otherwise type-check the
  // project with this repository's node_modules/@types too), then copied beside
  // the cache and renamed into place, so an interrupted run leaves no half project.
  const scratch = mkdtempSync(join(tmpdir(), 'kwc-cdk8s-init-'));
  const staged = mkdtempSync(join(cacheRoot, '.work-'));
  try {
    // The template names the project after its folder.
    const project = join(scratch, 'platform-app');
    mkdirSync(project);
    const init = spawnSync(process.execPath, [join(CLI, 'bin', 'cdk8s'), 'init', 'typescript-app'], {
      cwd: project,
      encoding: 'utf8',
      env: { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', CDK8S_CHECK_UPGRADE: 'false' },
      maxBuffer: 64 << 20,
    });
    const output = `${init.stdout}\n${init.stderr}`;
    const skipped: string[] = [];
    if (init.status !== 0) {
      const steps = hookSteps();
      const importAt = steps.indexOf('npm run import');
      const importFailed = /getaddrinfo \w+ raw\.githubusercontent\.com|Could not find a schema for k8s version/.test(output);
      if (!importFailed || importAt < 0 || !existsSync(join(project, 'node_modules', 'jest'))) {
        throw new Error(`cdk8s init typescript-app failed (exit ${init.status}):\n${output.slice(-8000)}`);
      }
      skipped.push('npm run import');
      for (const step of steps.slice(importAt + 1)) {
        try {
          execSync(step, { cwd: project, stdio: 'pipe', env: { ...process.env, CDK8S_CHECK_UPGRADE: 'false' } });
        } catch (err) {
          const e = err as { stdout?: Buffer; stderr?: Buffer };
          throw new Error(`the template's hook step "${step}" failed:\n${e.stdout?.toString() ?? ''}${e.stderr?.toString() ?? ''}`);
        }
      }
    }
    writeFileSync(join(project, READY), JSON.stringify({ skipped }));
    execFileSync('cp', ['-a', project, join(staged, 'project')]);
    renameSync(join(staged, 'project'), cached);
    return { dir: cached, cdk8sCli, skipped };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
    rmSync(staged, { recursive: true, force: true });
  }
}
