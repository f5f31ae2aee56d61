// Model folders on the Hugging Face Hub (or any server with its layout), as the OLMo model card loads
// them with `from_pretrained(repo, revision="step1000-tokens4B")`:
//
//   {endpoint}/{repo}/resolve/{revision}/{file}
//
// The endpoint defaults to https://huggingface.co (the HF_ENDPOINT convention lets users point
// elsewhere). Files are read with HTTP Range requests, so a safetensors header and then one tensor at
// a time cross the network, never a whole shard in one buffer. This uses only fetch, so it runs in
// every host; Node's on-disk cache with resumable downloads is in src/node/hub.ts.

import type { ModelSource } from "./checkpoint.js";
import type { ByteSource } from "./safetensors.js";

export const DEFAULT_HUB_ENDPOINT = "https://huggingface.co";

export interface HubOptions {
  /** "owner/name", e.g. "allenai/OLMo-1B-hf". */
  repo: string;
  /** Branch, tag or commit (default "main"). */
  revision?: string;
  /** Server root (default https://huggingface.co). */
  endpoint?: string;
  /** The fetch to use (default globalThis.fetch). */
  fetch?: FetchLike;
}

export type FetchLike = (url: string, init?: { method?: string; headers?: Record<string, string> }) => Promise<ResponseLike>;
export interface ResponseLike {
  ok: boolean;
  status: number;
  headers: { get(name: string): string | null };
  arrayBuffer(): Promise<ArrayBuffer>;
}

export class HubError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HubError";
  }
}

/** Checks "owner/name" and returns the URL of a file in the repo at a revision. */
export function hubFileUrl(options: HubOptions, file: string): string {
  if (!/^[\w.-]+\/[\w.-]+$/.test(options.repo)) throw new HubError(`hub: repo must look like "owner/name", got "${options.repo}"`);
  const endpoint = (options.endpoint ?? DEFAULT_HUB_ENDPOINT).replace(/\/+$/, "");
  const revision = encodeURIComponent(options.revision ?? "main");
  return `${endpoint}/${options.repo}/resolve/${revision}/${file.split("/").map(encodeURIComponent).join("/")}`;
}

function fetchOf(options: HubOptions): FetchLike {
  const f = options.fetch ?? (globalThis as { fetch?: FetchLike }).fetch;
  if (!f) throw new HubError("hub: this host has no fetch; pass options.fetch");
  return f;
}

/** A remote file as a ByteSource (size from a HEAD request, reads with Range), or null if absent. */
export async function remoteFile(url: string, fetch: FetchLike): Promise<ByteSource | null> {
  const head = await fetch(url, { method: "HEAD" });
  if (head.status === 404) return null;
  if (!head.ok) throw new HubError(`hub: HEAD ${url} answered ${head.status}`);
  const size = Number(head.headers.get("content-length"));
  if (!Number.isFinite(size)) throw new HubError(`hub: ${url} did not say its size (no Content-Length)`);
  return {
    name: url,
    size,
    read: async (offset, length) => {
      if (length === 0) return new Uint8Array(0);
      const response = await fetch(url, { headers: { Range: `bytes=${offset}-${offset + length - 1}` } });
      if (!response.ok) throw new HubError(`hub: GET ${url} bytes ${offset}-${offset + length - 1} answered ${response.status}`);
      const bytes = new Uint8Array(await response.arrayBuffer());
      // A server that ignores Range sends the whole file (200): take the slice asked for.
      const slice = response.status === 206 ? bytes : bytes.subarray(offset, offset + length);
      if (slice.length !== length) throw new HubError(`hub: ${url} returned ${slice.length} bytes for a ${length}-byte range`);
      return slice;
    },
  };
}

/** A model folder on the Hub, read over the network with Range requests. */
export function hubSource(options: HubOptions): ModelSource {
  const fetch = fetchOf(options);
  hubFileUrl(options, "config.json"); // validate the repo name early
  return {
    name: `${options.repo}@${options.revision ?? "main"}`,
    open: (file) => remoteFile(hubFileUrl(options, file), fetch),
  };
}

/** A model folder at a URL (a static server, a CDN): `${baseUrl}/${file}`, read with Range requests. */
export function urlSource(baseUrl: string, fetch?: FetchLike): ModelSource {
  const f = fetch ?? (globalThis as { fetch?: FetchLike }).fetch;
  if (!f) throw new HubError("urlSource: this host has no fetch; pass one");
  const base = baseUrl.replace(/\/+$/, "");
  return { name: base, open: (file) => remoteFile(`${base}/${file}`, f) };
}
