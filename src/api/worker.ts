// OlmoGenerator off the main thread: a page starts the olmo-js/worker module as a Web Worker and talks
// to it through createWorkerClient, which offers the same generate / stream / dispose as OlmoGenerator.
// A model running in a page's main thread freezes the page while a token is computed, and browsers let
// only workers block in Atomics.wait, which the WASM backend's threads need.
//
// The protocol (structured-clone messages, one request id per call):
//   page -> worker  { id, op: "load", model, options } | { id, op: "stream", prompt, options } | { id, op: "abort" } | { id, op: "dispose" }
//   worker -> page  { id, type: "progress", progress } | { id, type: "piece", text } | { id, type: "done" } | { id, type: "error", name, message }
// A stream's pieces are posted as they complete; "abort" (sent with the stream's id) ends it at the next token.

import { OlmoGenerator, type AbortSignalLike, type LoadProgress, type PretrainedOptions, type TextGenerateOptions } from "./generator.js";

/** Either end of the channel: a Worker in the page, the worker's global scope, or a MessagePort. */
export interface MessageEndpoint {
  postMessage(message: unknown): void;
  addEventListener(type: "message", listener: (event: { data: any }) => void): void;
}

/** fromPretrained's options that cross to the worker (a backend by name; progress comes back as messages). */
export type WorkerLoadOptions = Omit<PretrainedOptions, "backend"> & { backend?: "wasm" | "webgpu" | "js" };

/** An AbortSignal, with the listener method a real one has (so an abort reaches the worker at once). */
export type WorkerSignal = AbortSignalLike & { addEventListener?(type: "abort", listener: () => void): void };

type Request =
  | { id: number; op: "load"; model: string; options: Omit<WorkerLoadOptions, "onProgress"> }
  | { id: number; op: "stream"; prompt: string; options: Omit<TextGenerateOptions, "signal"> }
  | { id: number; op: "abort" }
  | { id: number; op: "dispose" };

type Reply =
  | { id: number; type: "progress"; progress: LoadProgress }
  | { id: number; type: "piece"; text: string }
  | { id: number; type: "done" }
  | { id: number; type: "error"; name: string; message: string };

/** A request before its id is given (distributed over the union, which a plain Omit would collapse). */
type WithoutId<T> = T extends unknown ? Omit<T, "id"> : never;

/** Start the endpoint's message pump where it has one (a MessagePort does; a Worker needs none). */
function start(endpoint: MessageEndpoint): void {
  (endpoint as { start?: () => void }).start?.();
}

/**
 * Answer a page's requests on `endpoint` (in a worker: its global scope). `load` makes the generator;
 * tests and hosts with their own sources pass another (NodeOlmoGenerator.fromPretrained, say).
 */
export function serveGenerator(
  endpoint: MessageEndpoint,
  load: (model: string, options: PretrainedOptions) => Promise<OlmoGenerator> = (model, options) => OlmoGenerator.fromPretrained(model, options),
): void {
  let generator: OlmoGenerator | null = null;
  /** Streams in progress: their abort flags, and when each has let go of the model. */
  const streams = new Map<number, { signal: { aborted: boolean }; done: Promise<void> }>();
  /** End every stream before the model goes (a load or dispose while one still runs on it). */
  const stopStreams = async () => {
    for (const s of streams.values()) s.signal.aborted = true;
    await Promise.all([...streams.values()].map((s) => s.done));
  };
  const reply = (message: Reply) => endpoint.postMessage(message);
  endpoint.addEventListener("message", async ({ data }: { data: Request }) => {
    // Not a request of this protocol (another library's message on a shared port): nothing to answer.
    if (typeof data !== "object" || data === null || typeof data.id !== "number") return;
    const { id } = data;
    try {
      if (!["load", "stream", "abort", "dispose"].includes(data.op)) throw new Error(`olmo-js/worker: unknown op ${JSON.stringify((data as { op?: unknown }).op) ?? "(none)"}; expected load, stream, abort or dispose`);
      if (data.op === "abort") {
        const stream = streams.get(id);
        if (stream) stream.signal.aborted = true;
        return;
      }
      if (data.op === "load" || data.op === "dispose") {
        await stopStreams();
        generator?.dispose();
        generator = null;
        if (data.op === "load") generator = await load(data.model, { ...data.options, onProgress: (progress) => reply({ id, type: "progress", progress }) });
      } else {
        if (!generator) throw new Error("olmo-js/worker: no model loaded");
        const signal = { aborted: false };
        let finished!: () => void;
        streams.set(id, { signal, done: new Promise<void>((resolve) => (finished = resolve)) });
        try {
          for await (const text of generator.stream(data.prompt, { ...data.options, signal })) reply({ id, type: "piece", text });
        } finally {
          streams.delete(id);
          finished();
        }
      }
      reply({ id, type: "done" });
    } catch (e) {
      const error = e instanceof Error ? e : new Error(String(e));
      reply({ id, type: "error", name: error.name, message: error.message });
    }
  });
  start(endpoint);
}

export interface WorkerClient {
  /** As OlmoGenerator.generate, run in the worker. */
  generate(prompt: string, options?: Omit<TextGenerateOptions, "signal"> & { signal?: WorkerSignal }): Promise<string>;
  /** As OlmoGenerator.stream; breaking out of the loop or aborting ends generation in the worker. */
  stream(prompt: string, options?: Omit<TextGenerateOptions, "signal"> & { signal?: WorkerSignal }): AsyncGenerator<string, void, undefined>;
  /** Free the model in the worker (the worker itself keeps running: terminate it when done). */
  dispose(): Promise<void>;
}

/**
 * Load a model in a worker that runs olmo-js/worker, and talk to it as to an OlmoGenerator (one client
 * per worker: the worker holds one model, and a second load replaces it):
 *   const worker = new Worker(new URL("olmo-js/worker", import.meta.url), { type: "module" });
 *   const olmo = await createWorkerClient(worker, "https://host/olmo-folder", { backend: "webgpu" });
 */
export async function createWorkerClient(worker: MessageEndpoint, model: string, options: WorkerLoadOptions = {}): Promise<WorkerClient> {
  let nextId = 1;
  const listeners = new Map<number, (reply: Reply) => void>();
  worker.addEventListener("message", ({ data }: { data: Reply }) => {
    if (typeof data === "object" && data !== null) listeners.get(data.id)?.(data);
  });
  // A worker that fails to start (a wrong URL, a script that throws) or whose message cannot be read
  // answers nothing: every call waiting on it fails instead of waiting forever.
  const failAll = (why: string) => {
    for (const [id, listener] of [...listeners]) {
      worker.postMessage({ id, op: "abort" }); // a stream the worker may still be running (a no-op otherwise)
      listener({ id, type: "error", name: "Error", message: `olmo-js/worker: ${why}` });
    }
  };
  // (An endpoint that hands every listener its messages whatever the type asked for must not fail
  // calls with them: an event carrying data is a message, not an error.)
  const events = worker as { addEventListener(type: string, listener: (event: { message?: unknown; data?: unknown } | null) => void): void };
  const isMessage = (event: { data?: unknown } | null) => typeof event === "object" && event !== null && "data" in event;
  events.addEventListener("error", (event) => {
    if (!isMessage(event)) failAll(`the worker failed${typeof event?.message === "string" && event.message ? `: ${event.message}` : ""}`);
  });
  events.addEventListener("messageerror", (event) => {
    if (!isMessage(event)) failAll("a message from the worker could not be read");
  });
  start(worker);
  const failure = (reply: Extract<Reply, { type: "error" }>) =>
    Object.assign(new Error(typeof reply.message === "string" && reply.message ? reply.message : "olmo-js/worker: the worker reported an error without a message"), {
      name: typeof reply.name === "string" && reply.name ? reply.name : "Error",
    });
  /** One request answered by "done" (progress and pieces go to `onReply`). */
  const call = (request: WithoutId<Extract<Request, { op: "load" | "dispose" }>>, onReply?: (reply: Reply) => void) =>
    new Promise<void>((resolve, reject) => {
      const id = nextId++;
      listeners.set(id, (reply) => {
        if (reply.type === "done" || reply.type === "error") listeners.delete(id);
        if (reply.type === "done") resolve();
        else if (reply.type === "error") reject(failure(reply));
        else onReply?.(reply);
      });
      worker.postMessage({ id, ...request });
    });

  const { onProgress, ...loadOptions } = options;
  await call({ op: "load", model, options: loadOptions }, (reply) => reply.type === "progress" && onProgress?.(reply.progress));

  async function* stream(prompt: string, streamOptions: Omit<TextGenerateOptions, "signal"> & { signal?: WorkerSignal } = {}): AsyncGenerator<string, void, undefined> {
    const { signal, ...rest } = streamOptions;
    if (signal?.aborted) throw signal.reason ?? Object.assign(new Error("generation aborted"), { name: "AbortError" });
    const id = nextId++;
    const replies: Reply[] = [];
    let wake: (() => void) | null = null;
    listeners.set(id, (reply) => {
      replies.push(reply);
      wake?.();
      wake = null;
    });
    const abort = () => worker.postMessage({ id, op: "abort" });
    signal?.addEventListener?.("abort", abort);
    worker.postMessage({ id, op: "stream", prompt, options: rest });
    let ended = false;
    try {
      for (;;) {
        if (signal?.aborted) throw signal.reason ?? Object.assign(new Error("generation aborted"), { name: "AbortError" });
        const reply = replies.shift();
        if (!reply) {
          await new Promise<void>((resolve) => (wake = resolve));
          continue;
        }
        if (reply.type === "piece") yield reply.text;
        else if (reply.type === "error") {
          ended = true;
          throw signal?.aborted && signal.reason !== undefined ? signal.reason : failure(reply);
        } else if (reply.type === "done") {
          ended = true;
          break;
        }
      }
      // Without addEventListener the abort is only seen here; the worker checked the same flag.
      if (signal?.aborted) throw signal.reason ?? Object.assign(new Error("generation aborted"), { name: "AbortError" });
    } finally {
      if (!ended) abort(); // the consumer broke out of the loop
      listeners.delete(id);
    }
  }

  return {
    stream,
    async generate(prompt, generateOptions) {
      let text = "";
      for await (const piece of stream(prompt, generateOptions)) text += piece;
      return text;
    },
    dispose: () => call({ op: "dispose" }),
  };
}
