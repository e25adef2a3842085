import { DecodeError } from './errors.ts';
import { fingerprintBytes } from './rabin.ts';

/** What a wire format needs to know about a schema to write or recognise it. */
export interface SchemaHandle {
  readonly kind: string;
  readonly version: number;
  readonly fingerprint: bigint;
}

/**
 * How the writer schema is identified in front of the Avro body. Two formats:
 * Avro single-object encoding (the default, self-describing by fingerprint) and the
 * Confluent wire format (magic 0 + 4-byte schema id), for deployments with a schema registry.
 */
export interface WireFormat {
  readonly name: string;
  header(schema: SchemaHandle): Buffer;
  /** Splits a message into the writer schema it names and where the Avro body starts. */
  read(bytes: Buffer, byFingerprint: (fp: bigint) => SchemaHandle | undefined): { schema: SchemaHandle; bodyOffset: number };
}

const SINGLE_OBJECT_MARKER = Buffer.from([0xc3, 0x01]);

export const singleObjectFormat: WireFormat = {
  name: 'single-object',
  header(schema) {
    return Buffer.concat([SINGLE_OBJECT_MARKER, fingerprintBytes(schema.fingerprint)]);
  },
  read(bytes, byFingerprint) {
    if (bytes.length < 10 || bytes[0] !== 0xc3 || bytes[1] !== 0x01) {
      throw new DecodeError('NOT_SINGLE_OBJECT', `not an Avro single-object message (${bytes.length} bytes, starts 0x${bytes.subarray(0, 2).toString('hex')})`);
    }
    const fp = bytes.readBigUInt64LE(2);
    const schema = byFingerprint(fp);
    if (!schema) throw new DecodeError('UNKNOWN_SCHEMA', `no known schema has fingerprint 0x${fp.toString(16).padStart(16, '0')}`);
    return { schema, bodyOffset: 10 };
  },
};

/**
 * Maps Confluent schema-registry ids to our schemas. A registry client fills one of these from
 * the registry's subjects; a static table works where ids are assigned by configuration.
 */
export interface SchemaIdTable {
  idOf(schema: SchemaHandle): number | undefined;
  fingerprintOf(id: number): bigint | undefined;
}

export function staticSchemaIds(entries: ReadonlyArray<{ id: number; fingerprint: bigint }>): SchemaIdTable {
  const byId = new Map(entries.map((e) => [e.id, e.fingerprint]));
  const byFp = new Map(entries.map((e) => [e.fingerprint, e.id]));
  return {
    idOf: (schema) => byFp.get(schema.fingerprint),
    fingerprintOf: (id) => byId.get(id),
  };
}

export function confluentFormat(ids: SchemaIdTable): WireFormat {
  return {
    name: 'confluent',
    header(schema) {
      const id = ids.idOf(schema);
      if (id === undefined) {
        throw new DecodeError('UNKNOWN_SCHEMA', `schema ${schema.kind} v${schema.version} has no schema-registry id`);
      }
      const out = Buffer.alloc(5);
      out.writeInt32BE(id, 1);
      return out;
    },
    read(bytes, byFingerprint) {
      if (bytes.length < 5 || bytes[0] !== 0) {
        throw new DecodeError('NOT_SINGLE_OBJECT', `not a Confluent wire-format message (${bytes.length} bytes)`);
      }
      const id = bytes.readInt32BE(1);
      const fp = ids.fingerprintOf(id);
      const schema = fp === undefined ? undefined : byFingerprint(fp);
      if (!schema) throw new DecodeError('UNKNOWN_SCHEMA', `schema-registry id ${id} is not known`);
      return { schema, bodyOffset: 5 };
    },
  };
}
