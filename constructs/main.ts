/** The app `npm run synth` runs: the default install, written to dist/manifests.yaml. */
import { App, Chart, YamlOutputType } from 'cdk8s';
import { WorkerPoolController } from './controller.js';

// The output folder comes from cdk8s.yaml (cdk8s synth passes it in CDK8S_OUTDIR).
const app = new App({ outputFileExtension: '.yaml', yamlOutputType: YamlOutputType.FILE_PER_CHART });
const chart = new Chart(app, 'manifests', { disableResourceNameHashes: true });
new WorkerPoolController(chart, 'controller');
app.synth();
