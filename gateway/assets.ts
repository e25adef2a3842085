import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { PRIVACY_TEXT } from '../edge/privacy.ts';
import { DEVICE_EMOTION_MODEL, EMOTION_MODELS } from '../vision/emotion-cnn.ts';
import { DEFAULT_DETECTOR_SIDES } from '../vision/face-crop.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface Asset {
  readonly type: string;
  readonly body: Buffer;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface WebAssets {
  get(pathname: string): Asset | undefined;
}

/** The page may run its own script, WebAssembly and nothing from elsewhere. */
const PAGE_HEADERS = {
  'content-security-policy': "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self' ws: wss:; img-src 'self' data: blob:; media-src 'self' blob: mediastream:; style-src 'self'; frame-ancestors 'none'",
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
};

/** The models the page runs: the server's own files (vision/README.md), nothing downloaded. */
export const WEB_MODELS = ['blazeface.onnx', EMOTION_MODELS[DEVICE_EMOTION_MODEL].file] as const;

/**
 * The web client (web/): its page, its script bundled by esbuild from web/main.ts at start (in
 * memory, so that what is served is always the checkout's code), ONNX Runtime Web's WebAssembly
 * from node_modules, and the two ONNX models from models/. No CDN.
 */
export async function loadWebAssets(): Promise<WebAssets> {
  const bundle = await build({
    entryPoints: [path.join(ROOT, 'web/main.ts')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    write: false,
    logLevel: 'silent',
    outfile: 'app.js',
  });
  const files = new Map<string, Asset>();
  const file = (route: string, type: string, body: Buffer, headers?: Record<string, string>) => files.set(route, { type, body, headers });
  file('/', 'text/html; charset=utf-8', readFileSync(path.join(ROOT, 'web/index.html')), PAGE_HEADERS);
  file('/app.js', 'text/javascript; charset=utf-8', Buffer.from(bundle.outputFiles[0]!.contents));
  file('/app.css', 'text/css; charset=utf-8', readFileSync(path.join(ROOT, 'web/app.css')));
  const ortDist = path.join(ROOT, 'node_modules/onnxruntime-web/dist');
  file('/ort/ort-wasm-simd-threaded.wasm', 'application/wasm', readFileSync(path.join(ortDist, 'ort-wasm-simd-threaded.wasm')));
  file('/ort/ort-wasm-simd-threaded.mjs', 'text/javascript; charset=utf-8', readFileSync(path.join(ortDist, 'ort-wasm-simd-threaded.mjs')));
  for (const m of WEB_MODELS) file(`/models/${m}`, 'application/octet-stream', readFileSync(path.join(ROOT, 'models', m)));
  const model = EMOTION_MODELS[DEVICE_EMOTION_MODEL];
  // The crop rules' settings: the server's defaults, so that the device crops as the classifier would.
  const config = { detectorSide: Math.max(...DEFAULT_DETECTOR_SIDES), inputSide: model.input, minFaceScore: 0.6, emotionModel: model.file, emotionModelVersion: model.version, privacy: PRIVACY_TEXT };
  file('/config.json', 'application/json', Buffer.from(JSON.stringify(config)));
  return { get: (p) => files.get(p === '/index.html' ? '/' : p) };
}
