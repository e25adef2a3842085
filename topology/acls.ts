import kafkajs, { type Admin, type AclEntry } from 'kafkajs';
import { changelogTopic, topicName, type Topology } from './topology.ts';

const { AclResourceTypes, AclOperationTypes, AclPermissionTypes, ResourcePatternTypes } = kafkajs;

export type AclResource = 'topic' | 'group' | 'transactional-id';
export type AclOperation = 'read' | 'write' | 'create' | 'delete' | 'describe' | 'describe-configs';

/** One allow rule: `principal` may do `operations` on the resources named `name` (or beginning with it). */
export interface AclRule {
  readonly principal: string;
  readonly resource: AclResource;
  readonly pattern: 'literal' | 'prefixed';
  readonly name: string;
  readonly operations: readonly AclOperation[];
}

/**
 * The least-privilege ACLs of a deployment, from the topology: each processor reads its inputs,
 * writes its outputs, owns its changelog, its consumer group (and the restore groups named after
 * it) and its transactional ids; each client writes and reads only what it declares. Nothing else
 * is allowed: the broker runs with `allow.everyone.if.no.acl.found=false`, and `admin` (the
 * tooling) is a super user.
 */
export function aclRules(topology: Topology): AclRule[] {
  const rules: AclRule[] = [];
  const topic = (principal: string, name: string, operations: AclOperation[], pattern: AclRule['pattern'] = 'literal') =>
    rules.push({ principal: `User:${principal}`, resource: 'topic', pattern, name, operations });
  for (const p of topology.processors) {
    const own = `${topology.prefix}${p.name}`;
    for (const id of p.inputs) topic(p.name, topicName(topology, id), ['read', 'describe']);
    for (const id of p.outputs) topic(p.name, topicName(topology, id), id.startsWith('dead-letter') ? ['write', 'describe', 'describe-configs'] : ['write', 'describe']);
    // inputs' max.message.bytes bound the dead letters (read at start)
    for (const id of p.inputs) topic(p.name, topicName(topology, id), ['describe-configs']);
    if (p.stateful) {
      // every state version of its own (a processor creates the changelog of new parameters)
      const changelog = changelogTopic(topology, p).name;
      topic(p.name, changelog.slice(0, changelog.indexOf('.state-') + '.state-'.length), ['read', 'write', 'describe', 'create'], 'prefixed');
    }
    rules.push({ principal: `User:${p.name}`, resource: 'group', pattern: 'prefixed', name: own, operations: ['read', 'describe', 'delete'] });
    rules.push({ principal: `User:${p.name}`, resource: 'transactional-id', pattern: 'prefixed', name: `${own}.`, operations: ['write', 'describe'] });
  }
  for (const c of topology.clients) {
    for (const id of c.writes) topic(c.name, topicName(topology, id), ['write', 'describe']);
    for (const id of c.reads) topic(c.name, topicName(topology, id), ['read', 'describe']);
    if (c.reads.length > 0) rules.push({ principal: `User:${c.name}`, resource: 'group', pattern: 'prefixed', name: `${topology.prefix}${c.name}-`, operations: ['read', 'describe', 'delete'] });
  }
  return rules;
}

const RESOURCE = { topic: AclResourceTypes.TOPIC, group: AclResourceTypes.GROUP, 'transactional-id': AclResourceTypes.TRANSACTIONAL_ID } as const;
const OPERATION = {
  read: AclOperationTypes.READ, write: AclOperationTypes.WRITE, create: AclOperationTypes.CREATE, delete: AclOperationTypes.DELETE,
  describe: AclOperationTypes.DESCRIBE, 'describe-configs': AclOperationTypes.DESCRIBE_CONFIGS,
} as const;

function entries(rule: AclRule): AclEntry[] {
  return rule.operations.map((op) => ({
    resourceType: RESOURCE[rule.resource],
    resourceName: rule.name,
    resourcePatternType: rule.pattern === 'literal' ? ResourcePatternTypes.LITERAL : ResourcePatternTypes.PREFIXED,
    principal: rule.principal,
    host: '*',
    operation: OPERATION[op],
    permissionType: AclPermissionTypes.ALLOW,
  }));
}

export type AclOutcome = { kind: 'applied'; created: number; unchanged: number } | { kind: 'no-authorizer' };

const key = (e: AclEntry) => [e.resourceType, e.resourceName, e.resourcePatternType, e.principal, e.host, e.operation, e.permissionType].join('|');

/** Every ACL the broker that answers holds, as keys. */
async function describedAcls(admin: Admin): Promise<Set<string>> {
  const described = await admin.describeAcls({
    resourceType: AclResourceTypes.ANY, resourcePatternType: ResourcePatternTypes.ANY,
    operation: AclOperationTypes.ANY, permissionType: AclPermissionTypes.ANY,
  } as Parameters<Admin['describeAcls']>[0]);
  return new Set(described.resources.flatMap((r) => r.acls.map((a) => key({ ...a, resourceType: r.resourceType, resourceName: r.resourceName, resourcePatternType: r.resourcePatternType } as AclEntry))));
}

/**
 * Creates the ACLs the topology declares that the cluster lacks (it removes none), and returns
 * once the broker's authorizer holds them. A broker without an authorizer answers
 * SECURITY_DISABLED: `no-authorizer`, unless `required`.
 *
 * Why the wait: in KRaft, CreateAcls returns once the controller has committed the ACL records,
 * and each broker applies them to its authorizer from the metadata log afterwards. A client that
 * starts at once (a stage started by the pipeline right after `topics apply`) must not meet a
 * broker that has not applied them: an authorization error is not retriable, and the stage's
 * consumer would crash. DescribeAcls answers from the broker's authorizer, so the ACLs it lists are
 * the ones it enforces. (A guard: 50 tries here, on a single broker with both cores busy, saw the
 * ACLs at once every time.)
 */
export async function applyAcls(admin: Admin, topology: Topology, options: { required?: boolean; visibleWithinMs?: number } = {}): Promise<AclOutcome> {
  const wanted = aclRules(topology).flatMap(entries);
  let existing: Set<string>;
  try {
    existing = await describedAcls(admin);
  } catch (err) {
    if (!options.required && /SECURITY_DISABLED|Security features are disabled|No Authorizer/i.test(`${(err as { type?: string }).type ?? ''} ${String(err)}`)) return { kind: 'no-authorizer' };
    throw err;
  }
  const missing = wanted.filter((e) => !existing.has(key(e)));
  if (missing.length > 0) {
    await admin.createAcls({ acl: missing });
    const deadline = Date.now() + (options.visibleWithinMs ?? 30_000);
    for (let seen = await describedAcls(admin); missing.some((e) => !seen.has(key(e))); seen = await describedAcls(admin)) {
      if (Date.now() > deadline) throw new Error(`the broker did not apply ${missing.filter((e) => !seen.has(key(e))).length} of the ${missing.length} ACLs created within ${options.visibleWithinMs ?? 30_000} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return { kind: 'applied', created: missing.length, unchanged: wanted.length - missing.length };
}

/** The rules as a table, for `topics describe`. */
export function formatAclRules(rules: readonly AclRule[]): string {
  return rules.map((r) => `  ${r.principal.padEnd(18)} ${r.operations.join(',').padEnd(28)} ${r.resource} ${r.pattern === 'prefixed' ? `${r.name}*` : r.name}`).join('\n');
}
