// The thread pool: workers that share the backend's WebAssembly memories and run kernels on request.
//
// Each worker instantiates the same module on each shared memory (memories.ts: a model may span
// several), then sleeps on a control word. A memory opened later is posted to every worker, which
// leaves its wait loop to receive it (kernel index -2), instantiates the module on it and reports
// that call done; the caller waits for that as for a kernel, so opening a memory stays synchronous.
// A kernel call writes its arguments into a shared block, bumps the generation counter and wakes the
// workers; every thread, the caller included as thread 0, computes its share (kernels split their
// output by thread index). Each worker then writes the generation it finished into its own slot, and
// the caller waits (polling, then sleeping) until every slot shows the current generation. No message
// is posted per call.
// The caller blocks in Atomics.wait, which Node's main thread and Web Workers allow (a browser's main
// thread does not: run olmo-js in a worker there, or use 1 thread).
//
// Completion is per-worker generation numbers rather than one shared "pending" counter: each slot has
// one writer, so no decrement can be counted against the wrong call (a shared counter can be, under
// CPU contention, and then the caller waits forever). Waits are bounded (POLL_MS) and re-check the
// words, so no single wake-up is relied upon, and a worker that never finishes is an error after
// WORKER_TIMEOUT_MS, not a hang.
//
// Control block (Int32Array): [0] generation, [1] memory index, [2] kernel index (-1 = exit, -2 = a
// memory is being posted), [3] argument
// count, [4 + t] result of thread t (kernels that report a bad index return it + 1; -1 = the worker
// threw), [4 + threads + t] last generation worker t finished. Arguments: a Float64Array beside it.

import type { KernelBinding, KernelExport } from "./boundary.js";

/** The part of a Worker (web) or worker_threads Worker (Node) the pool uses. */
export interface PoolWorker {
  postMessage(message: unknown): void;
  onMessage(listener: (message: unknown) => void): void;
  terminate(): void;
  /** Node: let the process exit while the worker sleeps (called once the worker is ready). */
  unref?(): void;
}

/** Starts a worker running `source` (a classic script / CommonJS program). */
export type SpawnWorker = (source: string) => PoolWorker;

/** The part of a kernel's binding the pool uses (boundary.ts). */
type PoolKernel<Args> = Pick<KernelBinding<Args, string>, "name" | "index" | "arity" | "call" | "write">;

const MAX_ARGS = 32;
/** Longest a kernel may keep a worker busy before the pool gives up (a wedged worker must not hang the caller). */
const WORKER_TIMEOUT_MS = 120_000;
// How long a thread polls before it sleeps, for workers waiting for a kernel and for the caller
// waiting for workers. Waking a sleeping thread costs 60-130 microseconds on this project's VM, a
// fifth of a decode step's GEMV, and the gaps between one forward pass's parallel kernels (small
// single-threaded ops and the JavaScript between them) often last longer than 0.1 ms; so a thread
// polls for 2 ms, through any gap inside a forward pass, and sleeps only between passes
// (bench/NOTES.md, "The thread pool"). The clock is read once per 1024 polls. The cost: each thread
// holds its core for up to 2 ms after its last kernel, which other work (another pool, more threads
// than cores) cannot use meanwhile.
const SPIN_MS = 2;
const POLL_MS = 20;

// The worker program. It runs as a classic Web Worker or as a CommonJS worker_threads program.
export const WORKER_SOURCE = `
const port = typeof require === "function" ? require("node:worker_threads").parentPort : self;
const listen = (fn) => (typeof require === "function" ? port.on("message", fn) : (self.onmessage = (e) => fn(e.data)));
// (Not "module": CommonJS hosts such as Bun's workers already declare it.)
let compiled, kernels, control, args, tid, threads, doneSlot, last = 0;
const fnsByMemory = [];
// The first message sets the worker up with memory 0; each later one brings another memory.
listen((message) => {
  if (message.module) {
    ({ module: compiled, kernels, tid, threads } = message);
    control = new Int32Array(message.control);
    args = new Float64Array(message.args);
    doneSlot = 4 + threads + tid;
  }
  const instance = new WebAssembly.Instance(compiled, { env: { memory: message.memory } });
  fnsByMemory[message.memoryIndex] = kernels.map((name) => instance.exports[name]);
  if (message.generation === undefined) {
    port.postMessage("ready");
  } else {
    Atomics.store(control, doneSlot, message.generation);
    Atomics.notify(control, doneSlot);
  }
  serve();
});
function serve() {
  // Locals, not the outer variables, in the loop that runs every kernel.
  const c = control, slots = args, fns = fnsByMemory, t = tid, n_threads = threads, done = doneSlot;
  let seen = last;
  for (;;) {
    // Poll for SPIN_MS, then sleep in short waits; every wake-up re-checks the generation.
    let generation;
    let pollUntil = 0;
    for (let spin = 0; (generation = Atomics.load(c, 0)) === seen; spin++) {
      if ((spin & 1023) !== 0) continue;
      if (spin === 0) pollUntil = performance.now() + ${SPIN_MS};
      else if (performance.now() > pollUntil) Atomics.wait(c, 0, seen, ${POLL_MS});
    }
    last = seen = generation;
    const op = c[2];
    // -1: exit; -2: back to the event loop, where the message with a new memory waits.
    if (op < 0) return;
    let result = 0;
    try {
      const n = c[3];
      const list = new Array(n + 2);
      for (let i = 0; i < n; i++) list[i] = slots[i];
      list[n] = t;
      list[n + 1] = n_threads;
      result = fns[c[1]][op].apply(null, list) | 0;
    } catch (e) {
      result = -1;
    }
    Atomics.store(c, 4 + t, result);
    Atomics.store(c, done, generation);
    Atomics.notify(c, done);
  }
}
`;

export class ThreadPool {
  private readonly control: Int32Array;
  private readonly args: Float64Array;
  private readonly workers: PoolWorker[] = [];
  private closed = false;

  private constructor(readonly threads: number) {
    this.control = new Int32Array(new SharedArrayBuffer(4 * (4 + 2 * threads)));
    this.args = new Float64Array(new SharedArrayBuffer(8 * MAX_ARGS));
  }

  /** Start threads - 1 workers (the caller is thread 0) and wait until each has instantiated. */
  static async start(
    threads: number, module: WebAssembly.Module, memory: WebAssembly.Memory, kernels: readonly string[], spawn: SpawnWorker,
  ): Promise<ThreadPool> {
    const pool = new ThreadPool(threads);
    const ready: Promise<void>[] = [];
    for (let tid = 1; tid < threads; tid++) {
      const worker = spawn(WORKER_SOURCE);
      pool.workers.push(worker);
      ready.push(
        new Promise((resolve, reject) => {
          worker.onMessage((m) => (m === "ready" ? resolve() : reject(new Error(`wasm worker ${tid}: ${String(m)}`))));
        }),
      );
      worker.postMessage({ module, memory, memoryIndex: 0, kernels, control: pool.control.buffer, args: pool.args.buffer, tid, threads });
    }
    await Promise.all(ready);
    for (const w of pool.workers) w.unref?.();
    return pool;
  }

  /**
   * Give every worker an instance of the module on `memory` (the backend's memory `memoryIndex`); returns
   * once all have it. Each worker leaves its wait loop to receive the message (kernel index -2).
   */
  addMemory(memory: WebAssembly.Memory, memoryIndex: number): void {
    if (this.closed) return;
    const c = this.control;
    const generation = Atomics.load(c, 0) + 1;
    for (const worker of this.workers) worker.postMessage({ memory, memoryIndex, generation });
    c[2] = -2;
    Atomics.add(c, 0, 1);
    Atomics.notify(c, 0);
    this.waitForWorkers(`(instantiating on memory ${memoryIndex})`, generation);
  }

  /**
   * Run `kernel` (`fn` is the caller's own export of it, on memory `memoryIndex`) on every thread with
   * these arguments. Returns the smallest positive thread result (a reported bad position + 1), or 0.
   */
  run<Args>(kernel: PoolKernel<Args>, fn: KernelExport, args: Args, memoryIndex = 0): number {
    if (this.closed) throw new Error("wasm backend: the thread pool was shut down (backend.dispose() was called)");
    if (kernel.arity > MAX_ARGS) throw new Error(`wasm backend: ${kernel.name}: ${kernel.arity} kernel arguments exceed ${MAX_ARGS}`);
    const c = this.control;
    kernel.write(args, this.args);
    c[1] = memoryIndex;
    c[2] = kernel.index;
    c[3] = kernel.arity;
    for (let t = 0; t < this.threads; t++) c[4 + t] = 0;
    const generation = Atomics.add(c, 0, 1) + 1;
    Atomics.notify(c, 0);
    let result = 0;
    try {
      result = kernel.call(fn, args, 0, this.threads);
    } finally {
      // Even when this thread's share failed, the workers must finish before the blocks are reused.
      this.waitForWorkers(kernel.name, generation);
    }
    for (let t = 1; t < this.threads; t++) {
      const r = c[4 + t]!;
      if (r < 0) throw new Error(`wasm backend: kernel ${kernel.name} failed in worker thread ${t}`);
      if (r > 0 && (result === 0 || r < result)) result = r;
    }
    return result;
  }

  /** Block until every worker has finished `generation`; a worker that never does is an error, not a hang. */
  private waitForWorkers(kernel: string, generation: number): void {
    const c = this.control;
    const deadline = performance.now() + WORKER_TIMEOUT_MS;
    for (let t = 1; t < this.threads; t++) {
      const slot = 4 + this.threads + t;
      const pollUntil = performance.now() + SPIN_MS;
      for (let spin = 1; Atomics.load(c, slot) !== generation; spin++) if ((spin & 1023) === 0 && performance.now() > pollUntil) break;
      for (let done = Atomics.load(c, slot); done !== generation; done = Atomics.load(c, slot)) {
        if (performance.now() > deadline) {
          this.close();
          throw new Error(
            `wasm backend: worker thread ${t} did not finish kernel ${kernel} (call ${generation}, it last finished ${done}) ` +
              `within ${WORKER_TIMEOUT_MS / 1000} s; the thread pool was shut down`,
          );
        }
        Atomics.wait(c, slot, done, POLL_MS);
      }
    }
  }

  /** Stop the workers; the process can then exit. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.control[2] = -1;
    Atomics.add(this.control, 0, 1);
    Atomics.notify(this.control, 0);
    for (const w of this.workers) w.terminate();
  }
}
