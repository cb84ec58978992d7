/**
 * `npm run images [-- --no-import]`: builds the local images (build.ts),
 * cached by content, and imports them into the containerd of the cluster
 * `npm run cluster:up` started (when it runs with a node). Progress goes to
 * stderr; stdout lists one image per line: `<name> <reference> <digest reference>`.
 */
import { parseArgs } from 'node:util';
import { controlPlaneReady, defaultClusterDir, readControlPlaneState } from '../cluster/control-plane.js';
import { importImages } from '../cluster/node.js';
import { buildImages, type ImageName } from './build.js';

const ALL: readonly ImageName[] = ['pause', 'controller', 'launcher', 'runner', 'standinLauncher', 'standinRunner'];
const say = (line: string): void => void process.stderr.write(`[images] ${line}\n`);

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({ options: { 'no-import': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } }));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\nusage: npm run images [-- --no-import]\n`);
    process.exitCode = 2;
    return;
  }
  if (values.help === true) {
    process.stdout.write('usage: npm run images [-- --no-import]\nBuilds the pause, controller, reference launcher and runner, and stand-in images and imports them into the running local cluster.\n');
    return;
  }
  const started = Date.now();
  const built = await buildImages(ALL, { log: say });
  say(`built in ${((Date.now() - started) / 1000).toFixed(1)} s (cache: .cache/images or $KWC_IMAGE_CACHE)`);
  for (const name of ALL) process.stdout.write(`${name} ${built[name].ref} ${built[name].digestRef}\n`);
  if (values['no-import'] === true) return;
  const dir = defaultClusterDir();
  const state = readControlPlaneState(dir);
  if (state?.node === undefined || !(await controlPlaneReady(dir, state))) {
    say(`no local cluster with a node runs in ${dir}: nothing imported (npm run cluster:up starts one)`);
    return;
  }
  await importImages(state.node, ALL.map((n) => built[n].archive));
  say(`imported into the containerd of node ${state.node.name} (${state.node.containerdSocket})`);
}

main().catch((error: unknown) => {
  say(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
});
