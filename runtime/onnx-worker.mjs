// The inference thread: holds ONNX Runtime sessions and runs them off the main thread, whose
// event loop keeps fetching and producing meanwhile (onnxruntime-node runs a session
// synchronously on the thread that calls it). Messages come from runtime/onnx.ts.
import { parentPort } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import { openFirst } from './onnx-sessions.mjs';

const sessions = new Map();

async function handle(message) {
  if (message.type === 'open') {
    const { session, provider, passedOver } = await openFirst(message.path, message.providers, message.threads);
    sessions.set(message.sessionId, session);
    return { result: { provider, passedOver, inputNames: session.inputNames, outputNames: session.outputNames }, transfer: [] };
  }
  if (message.type === 'run') {
    const session = sessions.get(message.sessionId);
    if (!session) throw new Error(`no session ${message.sessionId} in the inference thread`);
    const feeds = {};
    for (const [name, t] of Object.entries(message.feeds)) feeds[name] = new ort.Tensor(t.type, t.data, t.dims);
    const out = await session.run(feeds);
    const outputs = {};
    const transfer = [];
    for (const [name, t] of Object.entries(out)) {
      outputs[name] = { type: t.type, data: t.data, dims: t.dims };
      if (!transfer.includes(t.data.buffer)) transfer.push(t.data.buffer);
    }
    return { result: outputs, transfer };
  }
  throw new Error(`unknown message ${message.type}`);
}

parentPort.on('message', (message) => {
  handle(message).then(
    ({ result, transfer }) => parentPort.postMessage({ id: message.id, ok: true, result }, transfer),
    (err) => parentPort.postMessage({ id: message.id, ok: false, error: err instanceof Error ? err.message : String(err) }),
  );
});
