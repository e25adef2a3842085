import { createReadStream, createWriteStream } from 'node:fs';
import { finished } from 'node:stream/promises';
import avro from 'avsc';
import { DecodeError, errorMessage } from './errors.ts';
import type { Frame } from './generated/types.ts';
import type { SchemaRegistry } from './registry.ts';

const META_KEY = 'emotionmuse.meta';

/**
 * A recording is a captured session of frames: an Avro object container file of frame records
 * (the frame schema's newest version as writer), with free-form JSON metadata (for example a
 * ground-truth timeline) in the file header under `emotionmuse.meta`.
 */
export async function writeRecording(file: string, registry: SchemaRegistry, frames: Iterable<Frame> | AsyncIterable<Frame>, meta: Record<string, unknown> = {}): Promise<number> {
  const type = registry.schema('frame').type;
  // `metadata` is supported by avsc's BlockEncoder but missing from its type declarations.
  const options = { codec: 'deflate', metadata: { [META_KEY]: Buffer.from(JSON.stringify(meta)) } } as Partial<avro.EncoderOptions>;
  const encoder = new avro.streams.BlockEncoder(type, options);
  const out = createWriteStream(file);
  encoder.pipe(out);
  let count = 0;
  for await (const frame of frames) {
    if (!encoder.write(frame)) await new Promise((r) => encoder.once('drain', r));
    count++;
  }
  encoder.end();
  await finished(out);
  return count;
}

/** Reads a recording written with any known frame schema version into the newest frame type. */
export async function readRecording(file: string, registry: SchemaRegistry): Promise<{ frames: Frame[]; meta: Record<string, unknown> }> {
  const reader = registry.schema('frame').type;
  const frames: Frame[] = [];
  let meta: Record<string, unknown> = {};
  // avsc resolves each record from the file's writer schema to the reader (newest) version.
  const decoder = createReadStream(file).pipe(new avro.streams.BlockDecoder({ readerSchema: reader.schema() as object }));
  decoder.on('metadata', (_writer: avro.Type, _codec: string, header: { meta: Record<string, Buffer> }) => {
    const raw = header.meta[META_KEY];
    if (raw) meta = JSON.parse(raw.toString()) as Record<string, unknown>;
  });
  try {
    for await (const value of decoder) {
      frames.push(value as Frame);
    }
  } catch (err) {
    if (err instanceof DecodeError) throw err;
    throw new DecodeError('MALFORMED_AVRO', `${file}: not a readable recording: ${errorMessage(err)}`, err);
  }
  return { frames, meta };
}
