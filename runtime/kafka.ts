import kafkajs, { type Kafka, type LogEntry } from 'kafkajs';

const { Kafka: KafkaClient, logLevel: KafkaLogLevel } = kafkajs;
import type { Logger } from './log.ts';

const LEVELS: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [KafkaLogLevel.ERROR]: 'error',
  [KafkaLogLevel.WARN]: 'warn',
  [KafkaLogLevel.INFO]: 'info',
  [KafkaLogLevel.DEBUG]: 'debug',
};

/** A kafkajs client whose log lines go through our logger (kafkajs info is chatty: only warnings and up pass). */
export function createKafka(options: { brokers: readonly string[]; clientId: string; logger?: Logger }): Kafka {
  const logger = options.logger?.child({ component: 'kafkajs' });
  return new KafkaClient({
    clientId: options.clientId,
    brokers: [...options.brokers],
    connectionTimeout: 5000,
    retry: { initialRetryTime: 200, retries: 8 },
    logLevel: logger ? KafkaLogLevel.WARN : KafkaLogLevel.NOTHING,
    logCreator: () => (entry: LogEntry) => {
      if (!logger) return;
      const { message, ...rest } = entry.log;
      logger[LEVELS[entry.level] ?? 'info'](message, { namespace: entry.namespace, ...rest });
    },
  });
}
