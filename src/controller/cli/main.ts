/**
 * The controller process: `npm start -- [flags]`, and the container's entry.
 */
import { availableParallelism } from 'node:os';
// RSA key generation runs on libuv's thread pool; size it to the cores before anything uses it.
process.env.UV_THREADPOOL_SIZE ??= String(Math.max(4, availableParallelism()));

import type { Server } from 'node:http';
import { CONTROLLER_NAME } from '../../api/constants.js';
import { startHealthServer } from '../observability/health.js';
import { Manager } from '../manager.js';
import { ControllerMetrics, sourceOf } from '../observability/metrics.js';
import { CachingAuthorizer, kubeTokenAuthApi, startMetricsServer, type MetricsServer } from '../observability/metrics-server.js';
import { FlagError, parseFlags, usage, type ControllerFlags } from './flags.js';
import { KubeClient } from '../../runtime/k8s-client.js';
import { KubeconfigError, loadDefaultConnection } from '../../runtime/kubeconfig.js';
import { defaultIdentity, kubeLeaseStore, LeaderElector } from '../../runtime/leader-election.js';
import { Logger } from '../../runtime/log.js';

export const LEASE_NAME = 'kube-workerpool-controller-leader';

function parseOrExit(argv: readonly string[]): ControllerFlags {
  try {
    return parseFlags(argv);
  } catch (err) {
    if (err instanceof FlagError) {
      process.stderr.write(`${CONTROLLER_NAME}: ${err.message}\nRun with --help to see the flags.\n`);
      process.exit(2);
    }
    throw err;
  }
}

async function main(): Promise<void> {
  const flags = parseOrExit(process.argv.slice(2));
  if (flags.help) {
    process.stdout.write(usage());
    return;
  }
  const log = new Logger({ level: flags.logLevel, format: flags.logFormat });
  const cluster = await loadDefaultConnection();
  log.info('connecting to the cluster', { via: cluster.source });
  const client = KubeClient.fromKubeConfig(cluster.connection);
  const identity = defaultIdentity();

  let manager: Manager | undefined;
  let elector: LeaderElector | undefined;
  let shuttingDown = false;
  const servers: Server[] = [];
  let metricsServer: MetricsServer | undefined;
  const metrics = new ControllerMetrics({ log });

  const startManager = async (signal?: AbortSignal): Promise<void> => {
    manager = new Manager({
      client,
      log,
      namespaces: flags.namespaces,
      identity,
      stuckPodGraceMs: flags.stuckPodGraceMs,
      observer: metrics.observer,
      onReconciled: (kind, report) => metrics.observeReconcile(kind, report),
      onMessageRejected: () => metrics.messageRejected(),
    });
    metrics.attach(sourceOf(manager.ctx));
    await manager.start(signal);
  };

  if (flags.metricsBindAddress !== undefined) {
    metricsServer = await startMetricsServer({
      address: flags.metricsBindAddress,
      metrics,
      log,
      secure: flags.metricsSecure ? { certDir: flags.metricsCertDir, authorizer: new CachingAuthorizer(kubeTokenAuthApi(client)) } : undefined,
    });
  }

  if (flags.healthProbeBindAddress !== undefined) {
    servers.push(
      await startHealthServer(flags.healthProbeBindAddress, {
        notReadyReason: () => {
          if (elector !== undefined && !elector.isLeader()) return undefined;
          if (manager === undefined || !manager.hasSynced) return 'caches not synced yet';
          return undefined;
        },
      }),
    );
  }

  const shutdown = async (signal: string): Promise<void> => {
    if (shuttingDown) return;
    shuttingDown = true;
    log.info('shutting down; run pods keep running', { signal });
    // Sessions close cleanly (no will message), so the backend keeps every run in flight for the next leader.
    await manager?.stop();
    metrics.attach(undefined);
    await elector?.stop();
    await Promise.all([...servers.map((s) => new Promise((resolve) => s.close(resolve))), metricsServer?.close()]);
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));

  log.info('starting', { identity, namespaces: flags.namespaces.length === 0 ? 'all' : flags.namespaces.join(','), leaderElect: flags.leaderElect });
  if (!flags.leaderElect) {
    await startManager();
    return;
  }
  elector = new LeaderElector({
    leases: kubeLeaseStore(client),
    namespace: flags.leaderElectionNamespace,
    name: LEASE_NAME,
    identity,
    leaseDurationMs: flags.leaseDurationMs,
    renewDeadlineMs: flags.renewDeadlineMs,
    retryPeriodMs: flags.retryPeriodMs,
    logger: log,
    onStartedLeading: async (signal) => {
      log.info('became leader');
      await startManager(signal);
    },
    onStoppedLeading: () => {
      if (shuttingDown) return;
      // Another process may already lead: stop at once, as client-go's controllers do, and start clean.
      log.error('lost leadership; exiting');
      process.exit(1);
    },
  });
  void elector.run();
}

main().catch((err: unknown) => {
  // A configuration problem is the user's to fix: its message says what; a stack would bury it.
  const text = err instanceof KubeconfigError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
  process.stderr.write(`${CONTROLLER_NAME}: ${text}\n`);
  process.exit(1);
});
