import type { MessageKind } from './kinds.ts';
import { loadSchemaFiles, type SchemaEntry } from './registry.ts';

export function latestSchemas(dir?: string): Map<MessageKind, SchemaEntry> {
  const latest = new Map<MessageKind, SchemaEntry>();
  for (const e of loadSchemaFiles(dir)) {
    const cur = latest.get(e.kind);
    if (!cur || cur.version < e.version) latest.set(e.kind, e);
  }
  return latest;
}
