import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import avro from 'avsc';
import { DecodeError, EmotionMuseError, errorMessage } from './errors.ts';
import { MessageKinds, type MessageKind } from './kinds.ts';
import { rabinFingerprint } from './rabin.ts';
import { singleObjectFormat, type SchemaHandle, type WireFormat } from './wire-format.ts';
import type { MessageTypes } from './generated/types.ts';

export type MessageOf<K extends MessageKind> = MessageTypes[K];

export interface SchemaEntry extends SchemaHandle {
  readonly kind: MessageKind;
  readonly type: avro.Type;
  /** Parsing Canonical Form, the text the fingerprint is taken of. */
  readonly canonical: string;
}

export const SCHEMA_DIR = fileURLToPath(new URL('./avro/', import.meta.url));

function entryOf(kind: MessageKind, version: number, schema: unknown): SchemaEntry {
  const type = avro.Type.forSchema(schema as avro.Schema);
  const canonical = JSON.stringify(type.schema());
  return { kind, version, type, canonical, fingerprint: rabinFingerprint(canonical) };
}

/** Reads every `schemas/avro/<kind>/v<N>.avsc`. */
export function loadSchemaFiles(dir: string = SCHEMA_DIR): SchemaEntry[] {
  const entries: SchemaEntry[] = [];
  for (const kind of MessageKinds) {
    for (const file of readdirSync(path.join(dir, kind))) {
      const m = /^v(\d+)\.avsc$/.exec(file);
      if (!m) continue;
      const schema = JSON.parse(readFileSync(path.join(dir, kind, file), 'utf8'));
      entries.push(entryOf(kind, Number(m[1]), schema));
    }
  }
  return entries;
}

/**
 * All known schema versions of every message kind. Encodes with the newest version of a kind
 * (or a chosen one) behind the wire format's header, and decodes any known writer version into
 * the reader version asked for (the newest by default), by Avro schema resolution.
 *
 * @example
 * const registry = SchemaRegistry.load();
 * const bytes = registry.encode('listen', listen);
 * const back = registry.decode('listen', bytes);
 */
export class SchemaRegistry {
  readonly format: WireFormat;
  private readonly byFingerprint = new Map<bigint, SchemaEntry>();
  private readonly byKind = new Map<MessageKind, SchemaEntry[]>();
  private readonly resolvers = new Map<string, avro.Resolver>();

  constructor(entries: readonly SchemaEntry[], format: WireFormat = singleObjectFormat) {
    this.format = format;
    for (const e of entries) {
      const clash = this.byFingerprint.get(e.fingerprint);
      if (clash && (clash.kind !== e.kind || clash.version !== e.version)) {
        throw new EmotionMuseError('CONFIG_INVALID', `${e.kind} v${e.version} has the same canonical form as ${clash.kind} v${clash.version}`);
      }
      this.byFingerprint.set(e.fingerprint, e);
      const list = this.byKind.get(e.kind) ?? [];
      list.push(e);
      list.sort((a, b) => a.version - b.version);
      this.byKind.set(e.kind, list);
    }
  }

  static load(options: { dir?: string; format?: WireFormat } = {}): SchemaRegistry {
    return new SchemaRegistry(loadSchemaFiles(options.dir), options.format);
  }

  /** A new registry that also knows `schema` as version `version` of `kind` (used for evolution). */
  with(kind: MessageKind, version: number, schema: unknown): SchemaRegistry {
    return new SchemaRegistry([...this.entries(), entryOf(kind, version, schema)], this.format);
  }

  entries(): SchemaEntry[] {
    return [...this.byFingerprint.values()];
  }

  versions(kind: MessageKind): readonly SchemaEntry[] {
    return this.byKind.get(kind) ?? [];
  }

  schema(kind: MessageKind, version?: number): SchemaEntry {
    const list = this.versions(kind);
    const entry = version === undefined ? list[list.length - 1] : list.find((e) => e.version === version);
    if (!entry) throw new EmotionMuseError('UNKNOWN_SCHEMA', `no schema ${kind}${version === undefined ? '' : ` v${version}`}`);
    return entry;
  }

  encode<K extends MessageKind>(kind: K, value: MessageOf<K>, version?: number): Buffer {
    const entry = this.schema(kind, version);
    let body: Buffer;
    try {
      body = entry.type.toBuffer(value);
    } catch (err) {
      throw new EmotionMuseError('INVALID_RECORD', `${kind} v${entry.version}: ${errorMessage(err)}`, { cause: err });
    }
    return Buffer.concat([this.format.header(entry), body]);
  }

  /** Which schema wrote these bytes. Throws {@link DecodeError} when none known did. */
  identify(bytes: Buffer): { schema: SchemaEntry; bodyOffset: number } {
    const { schema, bodyOffset } = this.format.read(bytes, (fp) => this.byFingerprint.get(fp));
    return { schema: schema as SchemaEntry, bodyOffset };
  }

  decode<K extends MessageKind>(kind: K, bytes: Buffer, readerVersion?: number): MessageOf<K> {
    const { schema: writer, bodyOffset } = this.identify(bytes);
    if (writer.kind !== kind) {
      throw new DecodeError('WRONG_SCHEMA_KIND', `expected a ${kind} message, got ${writer.kind} v${writer.version}`);
    }
    const reader = this.schema(kind, readerVersion);
    let result: { value: unknown; offset: number };
    try {
      result = reader.type.decode(bytes, bodyOffset, writer === reader ? undefined : this.resolver(reader, writer));
    } catch (err) {
      throw new DecodeError('MALFORMED_AVRO', `${kind} v${writer.version}: ${errorMessage(err)}`, err);
    }
    if (result.offset !== bytes.length) {
      throw new DecodeError(
        'MALFORMED_AVRO',
        result.offset < 0 ? `${kind} v${writer.version}: message is truncated` : `${kind} v${writer.version}: ${bytes.length - result.offset} trailing bytes`,
      );
    }
    if (!reader.type.isValid(result.value)) {
      throw new DecodeError('MALFORMED_AVRO', `${kind} v${writer.version}: decoded value is not valid`);
    }
    return result.value as MessageOf<K>;
  }

  private resolver(reader: SchemaEntry, writer: SchemaEntry): avro.Resolver {
    const key = `${reader.fingerprint}:${writer.fingerprint}`;
    let resolver = this.resolvers.get(key);
    if (!resolver) {
      try {
        resolver = reader.type.createResolver(writer.type);
      } catch (err) {
        throw new DecodeError('UNKNOWN_SCHEMA', `${reader.kind} v${reader.version} cannot read v${writer.version}: ${errorMessage(err)}`, err);
      }
      this.resolvers.set(key, resolver);
    }
    return resolver;
  }
}
