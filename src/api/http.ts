// Text generation over HTTP, for any server that speaks the Fetch API's Request and Response: a
// Cloudflare Worker, a Vercel edge function, Deno.serve, Bun.serve. examples/cloudflare-worker and
// examples/edge-function are built on it.
//
//   POST /generate  {"prompt": "ROMEO:", "max_new_tokens": 32}   (also do_sample, temperature, top_k,
//                   top_p, seed, repetition_penalty: generate()'s options, in transformers' spelling)
//   200, text/event-stream, one event per new token as it is chosen, then a summary:
//     event: token   data: {"id": 1234, "text": " the"}        (text: the characters this token completes)
//     event: done    data: {"ids": [...], "text": "...", "finish_reason": "length" | "eos", "prompt_tokens": 4,
//                           "new_tokens": 32, "load_ms", "first_token_ms", "tokens_per_second", "cpu_ms",
//                           "backend": {"name", "peak_bytes", "limit_bytes"}, and the fields of options.report}
//     event: error   data: {"error": "..."}                      (a failure after the stream began)
//   400 {"error": "...", "field": "max_new_tokens"}   bad JSON, a missing or mistyped field, too many tokens
//   413 {"error": "..."}                               a body over 64 Ki characters
//   429 {"error": "busy: ..."}                         options.maxWaiting requests already wait for the model
//   503 {"error": "..."}                               the model could not be loaded (a model too large for
//                                                      the memory budget says so here, with the numbers)
//   404, 405 {"error": "..."}                          another path, another method
//
// The model loads on the first request (a runtime's start-up has less CPU time than a request), and a
// load that failed is tried again by the next request. Requests generate one at a time: each needs a KV
// cache and activations beside the weights, and the memory budget the loader checked holds one. The
// others wait in line, up to options.maxWaiting of them; past that a request is answered 429 at once
// (as text-generation-inference answers past its max_concurrent_requests) rather than holding its
// connection and its place in memory for a turn that may be minutes away.
//
// Streaming needs the event loop: a runtime such as workerd writes a chunk to the network only when
// JavaScript returns to its event loop, and a generation awaits nothing but its own promises, so
// between tokens the generation yields a turn of the event loop (a timer of 0 ms), or every token
// would arrive at the end. (The turn costs up to a millisecond a token: Node's timers round 0 up to 1.)

import { generate } from "../model/generate.js";
import type { OlmoGenerator } from "./generator.js";

/** The part of a Fetch API Request the handler reads. */
export interface HttpRequestLike {
  readonly method: string;
  readonly url: string;
  readonly headers?: { get(name: string): string | null };
  text(): Promise<string>;
  /** The body as a stream (a Fetch Request has one): read up to the limit, not whole, when there is no content-length. */
  readonly body?: { getReader(): { read(): Promise<{ done: boolean; value?: Uint8Array }>; cancel(): Promise<void> } } | null;
}

export interface GenerateHandlerOptions {
  /** Loads the model: on the first request, and again after a load that failed. */
  load: () => Promise<OlmoGenerator>;
  /** The most new tokens one request may ask for (default 256); the model's context bounds it too. */
  maxNewTokensLimit?: number;
  /** Fields the final event adds, such as a runtime's memory limit and which kernels the backend runs. */
  report?: (generator: OlmoGenerator) => Record<string, unknown>;
  /** The most requests that may wait while one generates (default 16; Infinity: no bound); a request past them is answered 429. */
  maxWaiting?: number;
}

/** The request fields, as they arrive in JSON. */
const FIELDS = ["prompt", "max_new_tokens", "do_sample", "temperature", "top_k", "top_p", "seed", "repetition_penalty"] as const;
/** A larger body is refused before it is parsed (a prompt this long could not fit a context anyway). */
const MAX_BODY_CHARS = 65536;
const DEFAULT_MAX_NEW_TOKENS = 64;

interface GenerateRequest {
  prompt: string;
  maxNewTokens: number;
  doSample?: boolean;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  repetitionPenalty?: number;
}

/** A refused request: the status, and the field at fault where there is one. */
class BadRequest extends Error {
  constructor(
    message: string,
    readonly field?: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

interface WebGlobals {
  Response: new (body: unknown, init: { status: number; headers: Record<string, string> }) => Response;
  ReadableStream: new (source: { start(controller: StreamController): void; cancel(): void }) => unknown;
  setTimeout(callback: () => void, ms: number): unknown;
}
interface StreamController {
  enqueue(chunk: Uint8Array): void;
  close(): void;
}
const web = globalThis as unknown as WebGlobals;

function jsonResponse(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new web.Response(JSON.stringify(body), { status, headers: { "content-type": "application/json; charset=utf-8", ...headers } });
}

function describe(value: unknown): string {
  // Short whatever arrives: a deeply nested object must not be stringified (or echoed) whole.
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  if (typeof value === "string") return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)}`;
  return `${typeof value} ${String(value)}`;
}

/** The request's fields, checked one by one; a BadRequest names the first that is wrong. */
function parseRequest(body: unknown, maxNewTokensLimit: number): GenerateRequest {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new BadRequest(`the body must be a JSON object such as {"prompt": "ROMEO:", "max_new_tokens": 32}, got ${describe(body)}`);
  }
  const fields = body as Record<string, unknown>;
  const unknown = Object.keys(fields).find((k) => !(FIELDS as readonly string[]).includes(k));
  if (unknown !== undefined) throw new BadRequest(`unknown field "${unknown}" (the fields are ${FIELDS.join(", ")})`, unknown);
  const { prompt } = fields;
  if (prompt === undefined) throw new BadRequest(`"prompt" is missing: the text to continue, as a string`, "prompt");
  if (typeof prompt !== "string") throw new BadRequest(`"prompt" must be a string, got ${describe(prompt)}`, "prompt");
  if (prompt === "") throw new BadRequest(`"prompt" must not be empty`, "prompt");

  const number = (name: (typeof FIELDS)[number], check: (v: number) => boolean, what: string): number | undefined => {
    const value = fields[name];
    if (value === undefined) return undefined;
    if (typeof value !== "number" || !check(value)) throw new BadRequest(`"${name}" must be ${what}, got ${describe(value)}`, name);
    return value;
  };
  const integer = (min: number, max: number) => (v: number) => Number.isInteger(v) && v >= min && v <= max;
  const maxNewTokens = number("max_new_tokens", integer(1, maxNewTokensLimit), `an integer from 1 to ${maxNewTokensLimit}`) ?? Math.min(DEFAULT_MAX_NEW_TOKENS, maxNewTokensLimit);
  const doSample = fields.do_sample;
  if (doSample !== undefined && typeof doSample !== "boolean") throw new BadRequest(`"do_sample" must be true or false, got ${describe(doSample)}`, "do_sample");
  return {
    prompt,
    maxNewTokens,
    doSample,
    temperature: number("temperature", (v) => v > 0 && Number.isFinite(v), "a positive number"),
    topK: number("top_k", integer(0, 2 ** 31 - 1), "an integer >= 0 (0 keeps every token)"),
    topP: number("top_p", (v) => v > 0 && v <= 1, "a number in (0, 1]"),
    seed: number("seed", integer(0, 2 ** 32 - 1), "an integer from 0 to 4294967295"),
    repetitionPenalty: number("repetition_penalty", (v) => v > 0 && Number.isFinite(v), "a positive number"),
  };
}

/**
 * The body as text. A streamed body (chunked: no content-length to refuse it by) is read only up to
 * 4 bytes a character of the limit, then refused: a client cannot make the server hold gigabytes.
 */
async function readBody(request: HttpRequestLike): Promise<string> {
  const body = request.body;
  if (!body || typeof body.getReader !== "function") return request.text();
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done || !value) break;
    bytes += value.byteLength;
    if (bytes > 4 * MAX_BODY_CHARS) {
      await reader.cancel();
      throw new BadRequest(`the body is over ${4 * MAX_BODY_CHARS} bytes; at most ${MAX_BODY_CHARS} characters are read`, undefined, 413);
    }
    chunks.push(value);
  }
  const all = new Uint8Array(bytes);
  let at = 0;
  for (const c of chunks) all.set(c, (at += c.byteLength) - c.byteLength);
  return new TextDecoder().decode(all);
}

/** The request's body as JSON, or a BadRequest. */
async function readJson(request: HttpRequestLike): Promise<unknown> {
  // A body that says it is too long is refused unread (an edge runtime's memory is small).
  const declared = Number(request.headers?.get("content-length") ?? 0);
  if (declared > 4 * MAX_BODY_CHARS) throw new BadRequest(`the body has ${declared} bytes; at most ${MAX_BODY_CHARS} characters are read`, undefined, 413);
  const text = await readBody(request);
  if (text.length > MAX_BODY_CHARS) throw new BadRequest(`the body has ${text.length} characters; at most ${MAX_BODY_CHARS} are read`, undefined, 413);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new BadRequest(`the body is not valid JSON (${(e as Error).message})`);
  }
}

/**
 * A handler of `POST /generate` (the protocol is described at the top of this file) for a server of
 * the Fetch API: `export default { fetch: createGenerateHandler({ load }) }` in a Worker.
 */
export function createGenerateHandler(options: GenerateHandlerOptions): (request: HttpRequestLike) => Promise<Response> {
  const limit = options.maxNewTokensLimit ?? 256;
  if (!Number.isInteger(limit) || limit < 1) throw new Error(`createGenerateHandler: maxNewTokensLimit must be a positive integer, got ${limit}`);
  const maxWaiting = options.maxWaiting ?? 16;
  if (!(maxWaiting === Infinity || (Number.isInteger(maxWaiting) && maxWaiting >= 0))) {
    throw new Error(`createGenerateHandler: maxWaiting must be a non-negative integer or Infinity, got ${maxWaiting}`);
  }
  let loading: Promise<OlmoGenerator> | null = null;
  /** The generation before this one ends (requests take turns). */
  let previous: Promise<unknown> = Promise.resolve();
  /** Requests in line: the one generating (or loading the model) and those waiting for their turn. */
  let unfinished = 0;

  return async (request) => {
    const arrived = performance.now();
    // A relative URL (some adapters pass the path alone) is resolved against a placeholder origin.
    const path = new URL(request.url, "http://localhost").pathname;
    if (path !== "/generate") return jsonResponse(404, { error: `nothing at ${path}: POST a JSON body to /generate` });
    if (request.method !== "POST") return jsonResponse(405, { error: `/generate takes POST, not ${request.method}` }, { allow: "POST" });
    let asked: GenerateRequest;
    try {
      asked = parseRequest(await readJson(request), limit);
    } catch (e) {
      if (!(e instanceof BadRequest)) throw e;
      return jsonResponse(e.status, e.field === undefined ? { error: e.message } : { error: e.message, field: e.field });
    }
    if (unfinished > maxWaiting) {
      return jsonResponse(429, { error: `busy: the model generates for one request at a time and ${maxWaiting} more already wait (the most it takes); try again later` });
    }
    unfinished++;
    let inLine = true;
    const leave = () => {
      if (inLine) (inLine = false), unfinished--;
    };
    let handedOver = false; // to its stream, which leaves the line when its turn ends or its client goes
    try {
      return await respond(asked, arrived, leave, () => (handedOver = true));
    } finally {
      if (!handedOver) leave();
    }
  };

  /**
   * The answer to a request in line: an error, or the stream of its generation, which calls `leave` when
   * its turn ends or when its client goes before the turn began (`handOver` says it has taken that on).
   */
  async function respond(asked: GenerateRequest, arrived: number, leave: () => void, handOver: () => void): Promise<Response> {
    let generator: OlmoGenerator;
    try {
      generator = await (loading ??= options.load());
    } catch (e) {
      loading = null;
      return jsonResponse(503, { error: `the model could not be loaded: ${e instanceof Error ? e.message : String(e)}` });
    }
    const loadMs = performance.now() - arrived;
    const { model, tokenizer, backend } = generator;
    const ids = tokenizer.encode(asked.prompt);
    const context = model.config.maxPositionEmbeddings;
    if (ids.length >= context) {
      return jsonResponse(400, { error: `"prompt" is ${ids.length} tokens; the model's context of ${context} tokens leaves no room for a new one`, field: "prompt" });
    }
    if (ids.length + asked.maxNewTokens > context) {
      return jsonResponse(400, {
        error: `"max_new_tokens" is ${asked.maxNewTokens}, but the prompt's ${ids.length} tokens leave room for ${context - ids.length} in the model's context of ${context} tokens`,
        field: "max_new_tokens",
      });
    }

    let cancelled = false, turnBegan = false;
    const encoder = new TextEncoder();
    const body = new web.ReadableStream({
      start: (controller) => {
        const send = (event: string, data: unknown) => {
          if (!cancelled) controller.enqueue(encoder.encode(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`));
        };
        const run = async () => {
          turnBegan = true;
          if (cancelled) return; // the client left while an earlier request generated
          const decoder = tokenizer.streamDecoder({ skipSpecialTokens: true });
          const started = performance.now();
          let paused = 0, firstTokenAt = 0, lastTokenAt = 0;
          const result = await generate(model, ids, {
            maxNewTokens: asked.maxNewTokens, doSample: asked.doSample, temperature: asked.temperature, topK: asked.topK, topP: asked.topP,
            seed: asked.seed, repetitionPenalty: asked.repetitionPenalty,
            onToken: async (id) => {
              lastTokenAt = performance.now();
              if (firstTokenAt === 0) firstTokenAt = lastTokenAt;
              send("token", { id, text: decoder.push(id) });
              // The turn of the event loop that lets the runtime write the token out (see the top of the file).
              await new Promise<void>((resolve) => web.setTimeout(resolve, 0));
              paused += performance.now() - lastTokenAt;
            },
            shouldStop: () => cancelled,
          });
          const newTokens = result.newIds.length;
          const usage = backend.memoryUsage();
          send("done", {
            ids: result.newIds,
            text: tokenizer.decode(result.newIds, { skipSpecialTokens: true }),
            finish_reason: result.newIds.at(-1) === model.config.eosTokenId ? "eos" : "length",
            prompt_tokens: ids.length,
            new_tokens: newTokens,
            load_ms: round(loadMs),
            first_token_ms: round(firstTokenAt - arrived),
            // Decoding: the tokens after the first over the time they took (the prefill is in first_token_ms).
            tokens_per_second: newTokens > 1 ? round((newTokens - 1) / ((lastTokenAt - firstTokenAt) / 1000)) : null,
            // Computing, not waiting: the generation's time less its turns of the event loop.
            cpu_ms: round(performance.now() - started - paused),
            backend: { name: backend.name, peak_bytes: usage.peak, limit_bytes: usage.limit },
            ...options.report?.(generator),
          });
        };
        const turn = previous.then(run).catch((e: unknown) => send("error", { error: (e as Error).message ?? String(e) }));
        // Whatever this turn's stream does, the next turn runs (a rejection here would skip its run).
        previous = turn
          .finally(() => {
            leave();
            if (!cancelled) controller.close();
          })
          .catch(() => {});
        handOver();
      },
      cancel: () => {
        cancelled = true;
        if (!turnBegan) leave(); // its place in line goes at once, not when its turn comes
      },
    });
    try {
      return new web.Response(body, { status: 200, headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" } });
    } catch (e) {
      cancelled = true; // its turn then ends at once (and leaves the line)
      throw e;
    }
  }
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
