/**
 * What a monitoring stack picks up: a Prometheus Operator ServiceMonitor for
 * the metrics Service, and the Grafana dashboard in a ConfigMap for Grafana's
 * dashboard sidecar (the kube-prometheus-stack way).
 */
import { ApiObject } from 'cdk8s';
import { Construct } from 'constructs';
import { k8s } from 'cdk8s-plus-28';
import { METRICS_PATH } from '../src/controller/permissions.js';
import { grafanaDashboard } from './dashboard.js';
import { LABEL_COMPONENT } from './labels.js';

/** Where a Pod finds its own ServiceAccount token; Prometheus sends its own to the secure endpoint. */
const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

export interface ControllerServiceMonitorProps {
  readonly name: string;
  readonly namespace: string;
  /** Labels of the metrics Service. */
  readonly selector: Readonly<Record<string, string>>;
  readonly portName: string;
  /** HTTPS with a bearer token (the scraper needs the metrics reader ClusterRole). */
  readonly secure: boolean;
  readonly interval: string;
  readonly labels: Readonly<Record<string, string>>;
}

export class ControllerServiceMonitor extends Construct {
  constructor(scope: Construct, id: string, props: ControllerServiceMonitorProps) {
    super(scope, id);
    new ApiObject(this, 'Resource', {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'ServiceMonitor',
      metadata: { name: props.name, namespace: props.namespace, labels: { ...props.labels, [LABEL_COMPONENT]: 'metrics' } },
      spec: {
        selector: { matchLabels: { ...props.selector } },
        namespaceSelector: { matchNames: [props.namespace] },
        endpoints: [
          {
            port: props.portName,
            path: METRICS_PATH,
            interval: props.interval,
            scheme: props.secure ? 'https' : 'http',
            // The endpoint's certificate is self-signed unless metricsCertSecretName is set; the token is what is checked.
            ...(props.secure ? { bearerTokenFile: SERVICE_ACCOUNT_TOKEN, tlsConfig: { insecureSkipVerify: true } } : {}),
          },
        ],
      },
    });
  }
}

export interface ControllerDashboardProps {
  readonly name: string;
  readonly namespace: string;
  /** The sidecar's label. */
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
}

/** The file name of the dashboard in the ConfigMap (and in dist/). */
export const DASHBOARD_FILE = 'kube-workerpool-controller.json';

export class ControllerDashboard extends Construct {
  constructor(scope: Construct, id: string, props: ControllerDashboardProps) {
    super(scope, id);
    new k8s.KubeConfigMap(this, 'Resource', {
      metadata: {
        name: props.name,
        namespace: props.namespace,
        labels: { ...props.labels, [LABEL_COMPONENT]: 'dashboard' },
        ...(Object.keys(props.annotations).length > 0 ? { annotations: { ...props.annotations } } : {}),
      },
      data: { [DASHBOARD_FILE]: dashboardJson() },
    });
  }
}

/** The dashboard as the file Grafana imports (dist/grafana-dashboard.json). */
export function dashboardJson(): string {
  return `${JSON.stringify(grafanaDashboard(), null, 2)}\n`;
}
