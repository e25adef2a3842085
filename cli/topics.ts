import { loadConfig, configHelp } from '../runtime/config.ts';
import { commonOptions } from '../runtime/common-config.ts';
import { opt } from '../runtime/config.ts';
import { createKafka } from '../runtime/kafka.ts';
import { kafkaSecurity } from '../runtime/security.ts';
import { aclRules, applyAcls, formatAclRules } from '../topology/acls.ts';
import { applyTopology, describeTopology, formatActions } from '../topology/apply.ts';
import { validateTopology } from '../topology/topology.ts';
import type { Command } from './command.ts';
import { deploymentTopology } from './deployment.ts';

const applyOptions = {
  ...commonOptions,
  fixConfig: opt.bool('EM_FIX_CONFIG', 'fix-config', false, 'Also set drifted topic configs (retention, cleanup policy, timestamp type) back to the declared values'),
  growPartitions: opt.bool('EM_GROW_PARTITIONS', 'grow-partitions', false, 'Grow a topic that has fewer partitions than the topology declares (--partitions for the user-keyed ones), where no stateful stage reads it (a keyed stateful topic is refused, with why)'),
};

export const topicsCommand: Command = {
  summary: 'create the declared topics (apply) or print the layout (describe)',
  help: `usage: emotionmuse topics apply [options]
       emotionmuse topics describe [options]

apply     creates every missing topic of the topology and reports drift (wrong partition count,
          replication or config) without destroying data, then creates the least-privilege ACLs
          of every principal (topology/acls.ts) where the broker has an authorizer. Running it twice changes nothing the
          second time. Exits 3 when drift remains. With --grow-partitions, a topic with fewer
          partitions than declared grows, unless a stateful stage reads it: adding partitions
          moves keys away from their state, so those are refused (size them before the first
          deployment; README, "Kubernetes and scaling").
describe  prints the topic layout and the processor graph (no broker needed).

options:
${configHelp(applyOptions)}`,
  async run(argv) {
    const [sub, ...rest] = argv;
    if (!sub) {
      console.log(this.help);
      return 2;
    }
    const config = loadConfig(applyOptions, { argv: rest });
    const topology = deploymentTopology(config);
    const problems = validateTopology(topology);
    if (problems.length > 0) {
      console.error(`the topology is invalid:\n  ${problems.join('\n  ')}`);
      return 1;
    }
    if (sub === 'describe') {
      console.log(`${describeTopology(topology)}\n\nACLs (applied by topics apply where the broker has an authorizer):\n${formatAclRules(aclRules(topology))}`);
      return 0;
    }
    if (sub !== 'apply') {
      console.error(`unknown subcommand "topics ${sub}"\n\n${this.help}`);
      return 2;
    }
    const admin = createKafka({ brokers: config.brokers, clientId: 'emotionmuse-topics', security: kafkaSecurity(config, 'admin') }).admin();
    try {
      await admin.connect();
      const actions = await applyTopology(admin, topology, { fixConfig: config.fixConfig, growPartitions: config.growPartitions });
      console.log(formatActions(actions));
      const acls = await applyAcls(admin, topology, { required: config.security === 'on' });
      console.log(acls.kind === 'applied' ? `ACLs: ${acls.created} created, ${acls.unchanged} unchanged (${aclRules(topology).length} rules; topics describe lists them)` : 'ACLs: the broker has no authorizer (plain mode); none applied');
      const changed = actions.filter((a) => a.kind === 'created' || a.kind === 'config-updated' || a.kind === 'grown').length;
      const drift = actions.filter((a) => a.kind === 'drift').length;
      console.log(`\n${changed === 0 ? 'no change' : `${changed} change(s)`}${drift > 0 ? `, ${drift} topic(s) drifted` : ''}`);
      return drift > 0 ? 3 : 0;
    } finally {
      await admin.disconnect();
    }
  },
};
