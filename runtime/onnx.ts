import { Worker } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import type { Logger } from './log.ts';
import { openFirst } from './onnx-sessions.mjs';

export type ExecutionProvider = 'cuda' | 'cpu';
export const EXECUTION_PROVIDERS = ['cuda', 'cpu'] as const;

/** What the processors need of a session, in this thread or in the inference thread. */
export interface ModelSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** Runs the model. The feeds' buffers may be moved to an inference thread: do not read them after. */
  run(feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>>;
}

export interface LoadedSession {
  readonly session: ModelSession;
  /** The provider that took the session (the first of the list that could). */
  readonly provider: ExecutionProvider;
}

export interface OpenOptions {
  readonly providers: readonly ExecutionProvider[];
  /** Intra-op threads; 0 lets ONNX Runtime choose (one per core). @defaultValue 0 */
  readonly threads?: number;
  /**
   * Run the session in this many inference threads (one copy each; a run goes to the least busy
   * thread) instead of this one: onnxruntime-node runs a session synchronously on the calling
   * thread, which would stop the event loop (fetching, producing, HTTP) for the length of every
   * batch. 0 runs it in this thread. @defaultValue 0
   */
  readonly inferenceThreads?: number;
  readonly logger?: Logger;
}

const announced = new Set<ExecutionProvider>();

/**
 * Opens an ONNX Runtime session with the first execution provider of `providers` that works:
 * CUDA where its provider library is installed and a GPU answers, else the next one (CPU).
 * Logs one line saying which provider is in use and why others were passed over.
 */
export async function openSession(modelPath: string, options: OpenOptions): Promise<LoadedSession> {
  const copies = options.inferenceThreads ?? 0;
  const opened = copies > 0
    ? await inferencePool(copies).open(modelPath, options.providers, options.threads ?? 0)
    : await openFirst(modelPath, options.providers, options.threads ?? 0);
  // The first model of a process says which provider runs and why others were passed over; the
  // others say it at debug level unless their provider differs.
  const first = !announced.has(opened.provider);
  announced.add(opened.provider);
  options.logger?.[first ? 'info' : 'debug'](`onnxruntime: ${modelPath.split('/').pop()} runs on the ${opened.provider.toUpperCase()} execution provider${copies > 0 ? ` in ${copies} inference thread(s)` : ''}`, {
    provider: opened.provider,
    passedOver: opened.passedOver,
  });
  return { session: opened.session, provider: opened.provider };
}

type Reply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };
type WireTensor = { type: ort.Tensor.Type; data: ort.Tensor.DataType; dims: readonly number[] };
type Opened = { provider: ExecutionProvider; passedOver: string[]; inputNames: string[]; outputNames: string[] };

/** One inference thread (runtime/onnx-worker.mjs): its sessions run one at a time, in order. */
class InferenceThread {
  private readonly worker = new Worker(new URL('./onnx-worker.mjs', import.meta.url));
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private nextId = 1;

  constructor() {
    this.worker.on('message', (reply: Reply) => {
      const p = this.pending.get(reply.id);
      if (!p) return;
      this.pending.delete(reply.id);
      if (this.pending.size === 0) this.worker.unref();
      if (reply.ok) p.resolve(reply.result);
      else p.reject(new Error(reply.error));
    });
    this.worker.on('error', (err) => {
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
      this.worker.unref();
    });
    // Referenced only while a call waits for its answer: an idle inference thread must not keep
    // the process alive. (After the listeners: adding a 'message' listener refs the worker.)
    this.worker.unref();
  }

  /** Calls sent and not yet answered. */
  get busy(): number {
    return this.pending.size;
  }

  call<T>(message: Record<string, unknown>, transfer: ArrayBuffer[] = []): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.ref();
      this.worker.postMessage({ ...message, id }, transfer);
    });
  }
}

/** The process's inference threads; each session has a copy in every one, and a run goes to the least busy. */
class InferencePool {
  private readonly threads: InferenceThread[];
  private sessions = 0;

  constructor(size: number) {
    this.threads = Array.from({ length: size }, () => new InferenceThread());
  }

  async open(path: string, providers: readonly ExecutionProvider[], threads: number): Promise<{ session: ModelSession; provider: ExecutionProvider; passedOver: string[] }> {
    const sessionId = this.sessions++;
    const [r] = await Promise.all(this.threads.map((t) => t.call<Opened>({ type: 'open', sessionId, path, providers: [...providers], threads })));
    const session: ModelSession = {
      inputNames: r!.inputNames,
      outputNames: r!.outputNames,
      run: async (feeds) => {
        const wire: Record<string, WireTensor> = {};
        // A tensor that owns its whole buffer is moved, not copied (a 16-frame detector batch is 9 MiB).
        const transfer: ArrayBuffer[] = [];
        for (const [name, t] of Object.entries(feeds)) {
          wire[name] = { type: t.type, data: t.data, dims: t.dims };
          const data = t.data as ArrayBufferView;
          if (ArrayBuffer.isView(data) && data.buffer instanceof ArrayBuffer && data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && !transfer.includes(data.buffer)) transfer.push(data.buffer);
        }
        const thread = this.threads.reduce((a, b) => (b.busy < a.busy ? b : a));
        const out = await thread.call<Record<string, WireTensor>>({ type: 'run', sessionId, feeds: wire }, transfer);
        const tensors: Record<string, ort.Tensor> = {};
        for (const [name, t] of Object.entries(out)) tensors[name] = new ort.Tensor(t.type, t.data as Float32Array, t.dims);
        return tensors;
      },
    };
    return { session, provider: r!.provider, passedOver: r!.passedOver };
  }
}

let pool: InferencePool | undefined;
/** The process's pool, made by the first session that asks (later sizes must agree). */
function inferencePool(size: number): InferencePool {
  pool ??= new InferencePool(size);
  return pool;
}

export { ort };
