import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DecodeError } from '../../schemas/errors.ts';
import { generateTypes } from '../../schemas/codegen.ts';
import { MessageKinds, type MessageKind } from '../../schemas/kinds.ts';
import { latestSchemas } from '../../schemas/latest.ts';
import { rabinFingerprint } from '../../schemas/rabin.ts';
import { readRecording, writeRecording } from '../../schemas/recording.ts';
import { SchemaRegistry, type MessageOf } from '../../schemas/registry.ts';
import { confluentFormat, staticSchemaIds } from '../../schemas/wire-format.ts';

const registry = SchemaRegistry.load();

const samples: { [K in MessageKind]: MessageOf<K> } = {
  frame: { userId: 'u1', sessionId: 's1', seq: 42, captureTimeMs: 1_764_000_000_123, encoding: 'GRAY8', width: 2, height: 2, data: Buffer.from([1, 2, 3, 4]), faceBox: { x: 1, y: 2, width: 30, height: 40 }, probabilities: [], edgeModelVersion: '' },
  'emotion-score': {
    userId: 'u1', sessionId: 's1', seq: 42, captureTimeMs: 1_764_000_000_123, faceFound: true,
    probabilities: [0.5, 0, 0, 0.25, 0, 0, 0.25], faceBox: null, modelVersion: 'fer-mini-xception@1', scoredAt: 'SERVER',
    timings: { decodeMs: 0.5, detectMs: 1.5, preprocessMs: 0.25, inferMs: 0.75 }, processedTimeMs: 1_764_000_000_200,
  },
  'emotion-change': {
    userId: 'u1', sessionId: 's1', previousLabel: null, label: 'happy', probabilities: [0, 0, 0, 1, 0, 0, 0],
    valence: 0.75, arousal: 0.5, windowIndex: 3, windowEndSeq: 40, captureTimeMs: 1_764_000_000_000, emittedTimeMs: 1_764_000_000_050, scheme: 'filter', confidence: 0.5,
  },
  listen: { listenId: 'l1', userId: 'u1', trackId: 'spotify:track:1', startTimeMs: 1_764_000_000_000, listenedMs: 31_000, outcome: 'SKIPPED' },
  recommendation: {
    listId: 'r1', userId: 'u1', trigger: 'EMOTION_CHANGE', causeId: 'emotion-changes/0/17',
    emotion: { label: 'sad', probabilities: [0, 0, 0, 0, 1, 0, 0], valence: -0.5, arousal: -0.25 },
    items: [{ trackId: 't1', rank: 1, finalScore: 0.5, preferenceScore: 0.25, emotionScore: 1 }],
    modelVersion: 'bilstm@1', createdTimeMs: 1_764_000_000_000,
  },
  'dead-letter': {
    sourceTopic: 'frames', sourcePartition: 2, sourceOffset: 99, key: Buffer.from('u1'), value: Buffer.from([0xde, 0xad]),
    stage: 'classifier', errorCode: 'UNDECODABLE_FRAME', errorMessage: 'not a JPEG', failedTimeMs: 1_764_000_000_000,
    valueBytes: 2, valueTruncated: false, valueSha256: 'ab'.repeat(32),
  },
};

describe('schemas', () => {
  it.each(MessageKinds)('round-trips a %s record with its writer schema in front', (kind) => {
    const bytes = registry.encode(kind, samples[kind] as never);
    expect(bytes.subarray(0, 2)).toEqual(Buffer.from([0xc3, 0x01]));
    expect(bytes.readBigUInt64LE(2)).toBe(registry.schema(kind).fingerprint);
    expect(registry.decode(kind, bytes)).toEqual(samples[kind]);
  });

  it('uses the CRC-64-AVRO fingerprint of the Avro specification', () => {
    // Test vectors from the Avro project's schema fingerprint tests.
    expect(rabinFingerprint('"null"')).toBe(7195948357588979594n);
    expect(rabinFingerprint('"int"')).toBe(8247732601305521295n);
  });

  // A made-up v3 of the newest frame schema, to exercise evolution both ways.
  const frameV3 = (() => {
    const v2 = JSON.parse(readFileSync(new URL('../../schemas/avro/frame/v2.avsc', import.meta.url), 'utf8'));
    return { ...v2, fields: [...v2.fields, { name: 'deviceModel', type: 'string', default: 'unknown' }] };
  })();
  const evolved = registry.with('frame', 3, frameV3);

  it('reads a record written by a newer version (added field with default) with the older reader', () => {
    const bytes = evolved.encode('frame', { ...samples.frame, deviceModel: 'pixel-9' } as never, 3);
    expect(evolved.identify(bytes).schema.version).toBe(3);
    const asV2 = evolved.decode('frame', bytes, 2);
    expect(asV2).toEqual(samples.frame);
    expect(asV2).not.toHaveProperty('deviceModel');
  });

  it('reads a record written by the older version with the newer reader, filling the default', () => {
    const bytes = evolved.encode('frame', samples.frame, 2);
    expect({ ...evolved.decode('frame', bytes, 3) }).toEqual({ ...samples.frame, deviceModel: 'unknown' });
  });

  it('rejects a version written by a schema the reader does not know', () => {
    const bytes = evolved.encode('frame', { ...samples.frame, deviceModel: 'x' } as never, 3);
    expect(() => registry.decode('frame', bytes)).toThrow(expect.objectContaining({ code: 'UNKNOWN_SCHEMA' }));
  });

  it('reads frames and scores of round 1 (v1) as v2: no edge scores, scored at the server', () => {
    const { probabilities: _p, edgeModelVersion: _v, ...v1Frame } = samples.frame;
    const frame = registry.decode('frame', registry.encode('frame', v1Frame as never, 1));
    expect(frame).toMatchObject({ ...v1Frame, probabilities: [], edgeModelVersion: '' });
    const { scoredAt: _s, ...v1Score } = samples['emotion-score'];
    expect(registry.decode('emotion-score', registry.encode('emotion-score', v1Score as never, 1))).toMatchObject({ ...v1Score, scoredAt: 'SERVER' });
  });

  it('reads dead letters of v1 as v2 (size unknown, not truncated), and v2 ones with the v1 reader', () => {
    const { valueBytes: _b, valueTruncated: _t, valueSha256: _h, ...v1 } = samples['dead-letter'];
    expect(registry.decode('dead-letter', registry.encode('dead-letter', v1 as never, 1))).toEqual({ ...v1, valueBytes: -1, valueTruncated: false, valueSha256: '' });
    expect(registry.decode('dead-letter', registry.encode('dead-letter', samples['dead-letter']), 1)).toEqual(v1);
  });

  it('reads emotion changes of v1 as v2 (the paper\'s scheme, no confidence), and v2 ones with the v1 reader', () => {
    const { scheme: _s, confidence: _c, ...v1 } = samples['emotion-change'];
    expect(registry.decode('emotion-change', registry.encode('emotion-change', v1 as never, 1))).toEqual({ ...v1, scheme: 'paper', confidence: null });
    expect(registry.decode('emotion-change', registry.encode('emotion-change', samples['emotion-change']), 1)).toEqual(v1);
  });

  it('cannot read v2 frames with the v1 reader, whose encoding enum lacks NONE and SCORES (readers upgrade first)', () => {
    const bytes = registry.encode('frame', { ...samples.frame, encoding: 'NONE', data: Buffer.alloc(0) });
    expect(() => registry.decode('frame', bytes, 1)).toThrow(/frame v1 cannot read v2/);
  });

  it.each([
    ['empty', Buffer.alloc(0), 'NOT_SINGLE_OBJECT'],
    ['text', Buffer.from('hello world, not avro'), 'NOT_SINGLE_OBJECT'],
    ['unknown fingerprint', Buffer.from([0xc3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0]), 'UNKNOWN_SCHEMA'],
  ] as const)('gives a typed error for %s bytes', (_name, bytes, code) => {
    const err = (() => {
      try {
        registry.decode('frame', bytes);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(DecodeError);
    expect(err).toMatchObject({ code, retriable: false });
  });

  it('says which kind it got when a message of another kind arrives', () => {
    const bytes = registry.encode('listen', samples.listen);
    expect(() => registry.decode('frame', bytes)).toThrow(expect.objectContaining({ code: 'WRONG_SCHEMA_KIND' }));
  });

  it('never crashes on truncated, extended or random bodies behind a valid header', () => {
    const good = registry.encode('frame', samples.frame);
    expect(() => registry.decode('frame', good.subarray(0, good.length - 3))).toThrow(DecodeError);
    expect(() => registry.decode('frame', Buffer.concat([good, Buffer.from([0])]))).toThrow(DecodeError);
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 256);
    for (let i = 0; i < 2000; i++) {
      const body = Buffer.from(Array.from({ length: 1 + (i % 64) }, rand));
      const bytes = Buffer.concat([good.subarray(0, 10), body]);
      try {
        registry.decode('frame', bytes);
      } catch (e) {
        expect(e).toBeInstanceOf(DecodeError);
      }
    }
  });

  it('speaks the Confluent wire format when schema-registry ids are configured', () => {
    const ids = staticSchemaIds([{ id: 17, fingerprint: registry.schema('listen').fingerprint }]);
    const confluent = SchemaRegistry.load({ format: confluentFormat(ids) });
    const bytes = confluent.encode('listen', samples.listen);
    expect(bytes[0]).toBe(0);
    expect(bytes.readInt32BE(1)).toBe(17);
    expect(confluent.decode('listen', bytes)).toEqual(samples.listen);
    expect(() => confluent.encode('frame', samples.frame)).toThrow(expect.objectContaining({ code: 'UNKNOWN_SCHEMA' }));
  });

  it('keeps schemas/generated/types.ts in step with the Avro files', () => {
    const committed = readFileSync(new URL('../../schemas/generated/types.ts', import.meta.url), 'utf8');
    expect(committed, 'run `npm run schemas:gen`').toBe(generateTypes(latestSchemas()));
  });
});

describe('recordings', () => {
  it('round-trips frames and metadata through an Avro object container file', async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'em-rec-')), 'session.avro');
    const frames = Array.from({ length: 25 }, (_, i) => ({ ...samples.frame, seq: i + 1, captureTimeMs: 1000 + i * 100 }));
    const meta = { timeline: [{ label: 'happy', seconds: 2.5 }], fps: 10 };
    expect(await writeRecording(file, registry, frames, meta)).toBe(25);
    const back = await readRecording(file, registry);
    expect(back.meta).toEqual(meta);
    expect(back.frames).toEqual(frames);
  });

  it('rejects a file that is not a recording', async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'em-rec-')), 'junk.avro');
    writeFileSync(file, 'definitely not avro');
    await expect(readRecording(file, registry)).rejects.toBeInstanceOf(DecodeError);
  });
});
