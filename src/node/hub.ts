// Hub models cached on disk (Node): each file of `{endpoint}/{repo}/resolve/{revision}/{file}` is
// downloaded once into `{cacheDir}/{repo}/{revision}/{file}`, then read from there. A download goes to
// `{file}.part` and resumes from its length with a Range request after an interruption; the finished
// file is renamed into place, so the cache never holds a truncated file under the real name.

import { createWriteStream } from "node:fs";
import { mkdir, rename, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { once } from "node:events";
import { DEFAULT_HUB_ENDPOINT, HubError, hubFileUrl, type HubOptions } from "../io/hub.js";
import type { ModelSource } from "../io/checkpoint.js";
import { fileSource } from "./fs.js";

export interface CachedHubOptions extends HubOptions {
  /** Default: $OLMO_JS_CACHE, else ~/.cache/olmo-js/hub. */
  cacheDir?: string;
  /** Bytes downloaded so far of the file being fetched. */
  onProgress?: (file: string, received: number, total: number) => void;
}

export function defaultHubCacheDir(): string {
  return process.env.OLMO_JS_CACHE ?? join(homedir(), ".cache", "olmo-js", "hub");
}

async function sizeOf(path: string): Promise<number | null> {
  try {
    return (await stat(path)).size;
  } catch {
    return null;
  }
}

/** Download url to path (resuming path.part); false when the server has no such file. */
async function download(url: string, path: string, onProgress: (received: number, total: number) => void): Promise<boolean> {
  const part = `${path}.part`;
  await mkdir(dirname(path), { recursive: true });
  const have = (await sizeOf(part)) ?? 0;
  const response = await fetch(url, have > 0 ? { headers: { Range: `bytes=${have}-` } } : {});
  if (response.status === 404) return false;
  if (response.status === 416) {
    await rename(part, path); // the part file already holds everything
    return true;
  }
  if (!response.ok || !response.body) throw new HubError(`hub: GET ${url} answered ${response.status}`);
  const resumed = response.status === 206;
  const total = (resumed ? have : 0) + Number(response.headers.get("content-length") ?? NaN);
  const out = createWriteStream(part, { flags: resumed ? "a" : "w" });
  let received = resumed ? have : 0;
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    if (!out.write(chunk)) await once(out, "drain");
    received += chunk.length;
    onProgress(received, total);
  }
  out.end();
  await once(out, "finish");
  if (Number.isFinite(total) && received !== total) throw new HubError(`hub: ${url} ended after ${received} of ${total} bytes; run again to resume`);
  await rename(part, path);
  return true;
}

/** A Hub model folder, downloaded file by file into the disk cache on first use. */
export function cachedHubSource(options: CachedHubOptions): ModelSource {
  const revision = options.revision ?? "main";
  const root = join(options.cacheDir ?? defaultHubCacheDir(), options.repo, revision);
  hubFileUrl(options, "config.json"); // validate the repo name early
  return {
    name: `${options.endpoint ?? DEFAULT_HUB_ENDPOINT}/${options.repo}@${revision}`,
    open: async (file) => {
      const path = join(root, file);
      if ((await sizeOf(path)) === null) {
        const found = await download(hubFileUrl(options, file), path, (r, t) => options.onProgress?.(file, r, t));
        if (!found) return null;
      }
      return fileSource(path);
    },
  };
}
