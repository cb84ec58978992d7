#!/usr/bin/env node
/**
 * The controller's command in the npm package (`npx kube-workerpool-controller`).
 *
 * The packages only the controller needs are optional peer dependencies of the
 * package, so that a cdk8s app that uses the constructs does not install them
 * (mqtt alone brings type packages that break such an app's `tsc`). This
 * checks they are installed before any of the controller's modules load, and
 * otherwise names the command that installs them. The container image, which
 * has them all, runs main.js directly.
 */
import { createRequire } from 'node:module';
import { CONTROLLER_NAME } from '../../api/constants.js';

/** What the controller imports at start, besides Node.js itself. */
export const CONTROLLER_PACKAGES = ['@peculiar/x509', 'mqtt', 'node-forge', 'prom-client', 'reflect-metadata', 'yaml'] as const;

const { peerDependencies } = createRequire(import.meta.url)('kube-workerpool-controller/package.json') as {
  peerDependencies: Record<string, string>;
};

const missing = CONTROLLER_PACKAGES.filter((name) => {
  try {
    import.meta.resolve(name);
    return false;
  } catch {
    return true;
  }
});
if (missing.length > 0) {
  const install = missing.map((name) => `${name}@${peerDependencies[name] ?? 'latest'}`).join(' ');
  process.stderr.write(
    `${CONTROLLER_NAME}: the controller needs ${missing.join(', ')}, optional peer dependencies of the package ` +
      `(the constructs alone do not); install them next to it: npm install ${install}\n`,
  );
  process.exit(1);
}
await import('./main.js');
