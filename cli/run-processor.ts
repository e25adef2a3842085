import { PROCESSORS } from '../processors/index.ts';
import { SchemaRegistry } from '../schemas/registry.ts';
import { processorSpec } from '../topology/topology.ts';
import { loadConfig, type ConfigOf } from '../runtime/config.ts';
import { processorOptions } from '../runtime/common-config.ts';
import { errorMessage } from '../schemas/errors.ts';
import { startHttpServer } from '../runtime/http.ts';
import { writePortFile } from '../runtime/net.ts';
import { createKafka } from '../runtime/kafka.ts';
import { kafkaSecurity, metricsAuth, type Principal } from '../runtime/security.ts';
import { createLogger } from '../runtime/log.ts';
import { createMetrics } from '../runtime/metrics.ts';
import { StreamRuntime } from '../runtime/stream-runtime.ts';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { deploymentTopology } from './deployment.ts';

export type ProcessorConfig = ConfigOf<typeof processorOptions>;

/**
 * Runs one processor as this process: HTTP endpoints, the stream runtime, and a clean stop on
 * SIGTERM/SIGINT (the batch in flight finishes and commits, the group is left) within the
 * shutdown timeout. Resolves when the processor has stopped.
 */
export async function runProcessor(name: string, argv: readonly string[]): Promise<number> {
  const entry = PROCESSORS[name];
  if (!entry) throw new Error(`unknown processor "${name}" (known: ${Object.keys(PROCESSORS).join(', ')})`);
  // One validation over both tables (so that an unknown flag is an error), then typed views.
  const all = loadConfig({ ...processorOptions, ...entry.options }, { argv });
  const config = all as unknown as ProcessorConfig;
  const logger = createLogger(config.logLevel, { processor: name, pid: process.pid });
  const topology = deploymentTopology(config);
  const spec = processorSpec(topology, name);
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'emotionmuse_process_' });
  registry.setDefaultLabels({ processor: name });
  const metrics = createMetrics(registry);
  const core = await entry.create({ metrics, logger, config: all, common: config });
  const security = kafkaSecurity(config, spec.name as Principal);
  const kafka = createKafka({ brokers: config.brokers, clientId: `emotionmuse-${name}`, logger, security });
  const runtime = new StreamRuntime({
    kafka, topology, spec, core, logger, metrics,
    registry: SchemaRegistry.load(),
    groupId: config.groupId || `${config.topicPrefix}${name}`,
    guarantee: config.guarantee === 'topology' ? spec.guarantee : config.guarantee,
    settings: config,
  });
  const http = await startHttpServer({
    port: config.httpPort === -1 ? entry.port : config.httpPort,
    host: config.httpHost,
    portTries: config.httpPortTries,
    metricsAuth: metricsAuth(config),
    registry,
    ready: () => runtime.readiness(),
    routes: core.routes ? [...core.routes] : [],
  });
  writePortFile(config.httpPortFile, http.port);
  logger.info('processor starting', { http: `${config.httpHost}:${http.port}`, brokers: config.brokers, kafka: security.describe, groupId: config.groupId || `${config.topicPrefix}${name}` });

  return new Promise<number>((resolve) => {
    let exiting = false;
    const exit = async (code: number, why: string) => {
      if (exiting) return;
      exiting = true;
      // A second signal, or one during a stop for another reason, ends the process at once.
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      logger.info('stopping', { why });
      const timer = setTimeout(() => {
        logger.error('shutdown timed out; exiting with the batch in flight uncommitted (it will be aborted)');
        // Open connections would keep the process alive: leave now, as the message says.
        process.exit(code || 1);
      }, config.shutdownTimeoutMs);
      try {
        await runtime.stop();
      } catch (err) {
        logger.error('error while stopping', { error: errorMessage(err) });
      }
      await http.close();
      clearTimeout(timer);
      logger.info('stopped', { why });
      // Everything is committed and closed. A client library that still holds a socket (seen
      // after a broker restart) must not keep the process alive: the timer does not hold the
      // process itself, but fires while anything else does.
      setTimeout(() => {
        logger.warn('handles still open after the stop; exiting anyway');
        process.exit(code);
      }, 1000).unref();
      resolve(code);
    };
    const onSignal = (signal: NodeJS.Signals) => void exit(0, signal);
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
    runtime.start((err) => void exit(1, `consumer crashed: ${errorMessage(err)}`)).catch((err: unknown) => {
      logger.error('could not start', { error: errorMessage(err), hint: 'is Kafka running? `emotionmuse infra up` starts a local broker' });
      void exit(1, 'start failed');
    });
  });
}
