import { MessageKinds, type MessageKind } from './kinds.ts';
import type { SchemaEntry } from './registry.ts';

type Json = string | { type: string; [k: string]: unknown } | Json[];

/**
 * Writes TypeScript declarations for the newest schema version of each kind: the Avro files are
 * the single source of truth, and `npm run schemas:gen` keeps schemas/generated/types.ts in step
 * (a unit test fails when it is stale).
 */
export function generateTypes(latest: ReadonlyMap<MessageKind, SchemaEntry>): string {
  const named = new Map<string, string>();
  const order: string[] = [];

  const tsOf = (schema: Json): string => {
    if (Array.isArray(schema)) return schema.map(tsOf).join(' | ');
    if (typeof schema === 'string') {
      switch (schema) {
        case 'null': return 'null';
        case 'boolean': return 'boolean';
        case 'int': case 'long': case 'float': case 'double': return 'number';
        case 'bytes': return 'Buffer';
        case 'string': return 'string';
        default: return shortName(schema);
      }
    }
    switch (schema.type) {
      case 'record': {
        const name = shortName(schema.name as string);
        if (!named.has(name)) {
          named.set(name, '');
          const fields = (schema.fields as Array<{ name: string; type: Json; doc?: string }>).map((f) => {
            const doc = f.doc ? `  /** ${f.doc} */\n` : '';
            return `${doc}  ${f.name}: ${tsOf(f.type)};`;
          });
          const doc = schema.doc ? `/** ${schema.doc as string} */\n` : '';
          named.set(name, `${doc}export interface ${name} {\n${fields.join('\n')}\n}`);
          order.push(name);
        }
        return name;
      }
      case 'enum': {
        const name = shortName(schema.name as string);
        if (!named.has(name)) {
          named.set(name, `export type ${name} = ${(schema.symbols as string[]).map((s) => `'${s}'`).join(' | ')};`);
          order.push(name);
        }
        return name;
      }
      case 'array': return `Array<${tsOf(schema.items as Json)}>`;
      case 'map': return `Record<string, ${tsOf(schema.values as Json)}>`;
      default: return tsOf(schema.type as Json);
    }
  };

  const roots: string[] = [];
  for (const kind of MessageKinds) {
    const entry = latest.get(kind);
    if (!entry) throw new Error(`no schema for ${kind}`);
    roots.push(`  '${kind}': ${tsOf(entry.type.schema({ exportAttrs: true }) as Json)};`);
  }
  return [
    '// Generated from schemas/avro by `npm run schemas:gen`. Do not edit.',
    ...order.map((n) => named.get(n)!),
    `/** The value type of each message kind, at its newest schema version. */\nexport interface MessageTypes {\n${roots.join('\n')}\n}`,
    '',
  ].join('\n\n');
}

function shortName(name: string): string {
  return name.slice(name.lastIndexOf('.') + 1);
}
