// Hub models cached on disk (Node), in the layout of Python's huggingface_hub, so that a model either
// of them downloaded is used by the other with no second download:
//
//   {cache}/models--{owner}--{name}/
//     blobs/{etag}                  the file's bytes, named by the Hub's ETag: the sha256 for LFS files
//                                   (weights), the git blob sha1 for the others
//     blobs/{etag}.incomplete       a download in progress (huggingface_hub's name), resumed next time
//     snapshots/{commit}/{file}     a relative symlink to ../../blobs/{etag} (one more ../ per folder)
//     refs/{revision}               the commit a branch or tag pointed to when last seen
//
// The cache root is $OLMO_JS_CACHE when set, else huggingface_hub's: $HF_HUB_CACHE, else $HF_HOME/hub,
// else ~/.cache/huggingface/hub (see huggingface_hub's constants.py and file_download.py).
//
// A load resolves the revision to a commit once (the first file's HEAD answers with X-Repo-Commit) and
// fetches every other file at that commit, so a branch that moves mid-download cannot mix two commits.
// A file already in the snapshot costs no request; a blob already in blobs/ (the same bytes under
// another commit) is linked, not fetched. When no server answers, the cached snapshot of the revision
// is used as it is (as HF_HUB_OFFLINE=1 does in Python).
//
// Nothing reaches blobs/ unchecked: a resumed download sends If-Range with the ETag and checks
// Content-Range; the size must match X-Linked-Size / Content-Length, and the content its ETag where
// the ETag is a hash (the Hub's are: sha256 for LFS files, git's blob sha1 for the others; another
// server's opaque ETag leaves the size as the only check) before the rename. Error pages (non-2xx,
// text/html) are never written.

import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { copyFile, mkdir, open, readFile, rename, rm, stat, symlink } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join, relative, resolve, sep } from "node:path";
import {
  checkRepoFilePath, DEFAULT_HUB_ENDPOINT, fetchFailure, HubError, hubFileUrl, isErrorPage, parseContentRange, type HubOptions,
} from "../io/hub.js";
import type { ModelSource } from "../io/checkpoint.js";
import type { ByteSource } from "../io/safetensors.js";
import { fileSource, writeFileAtomic } from "./fs.js";

export interface CachedHubOptions extends Omit<HubOptions, "fetch"> {
  /** Cache root. Default: $OLMO_JS_CACHE, else $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub. */
  cacheDir?: string;
  /** Use only the cache, never the network. Default: $HF_HUB_OFFLINE is 1 / true / yes / on. */
  offline?: boolean;
  /** Bytes downloaded so far of the file being fetched. */
  onProgress?: (file: string, received: number, total: number) => void;
  /** Longest wait for a server's answer (its headers), in ms. Default 30 000. */
  connectTimeoutMs?: number;
  /** Longest gap between two pieces of a file's body, in ms: a stalled server. Default 30 000. */
  idleTimeoutMs?: number;
  /** A trickling server: abort when fewer than `bytesPerSecond` arrive on average over `windowMs`. Default 1 KiB/s over 60 s. */
  lowSpeedLimit?: { bytesPerSecond: number; windowMs: number };
  /** Longest time one request may take in all, in ms. Default: no limit (big shards on slow links). */
  totalTimeoutMs?: number;
  /** Tries after the first for a failed request (network error, timeout, 5xx, 429, cut transfer). Default 3. */
  retries?: number;
  /** Wait before the first retry, doubled for each next one (at most 10 s). Default 1000 ms. */
  retryDelayMs?: number;
}

/** The cache root: $OLMO_JS_CACHE, else where Python's huggingface_hub keeps its cache. */
export function defaultHubCacheDir(env: Record<string, string | undefined> = process.env): string {
  const home = (path: string) => (path === "~" || path.startsWith("~/") ? join(homedir(), path.slice(1)) : path);
  if (env.OLMO_JS_CACHE) return home(env.OLMO_JS_CACHE);
  // As huggingface_hub/constants.py: HF_HUB_CACHE, its older name HUGGINGFACE_HUB_CACHE, then HF_HOME/hub
  // where HF_HOME defaults to $XDG_CACHE_HOME/huggingface, XDG_CACHE_HOME to ~/.cache.
  const hubCache = env.HF_HUB_CACHE ?? env.HUGGINGFACE_HUB_CACHE;
  if (hubCache) return home(hubCache);
  const hfHome = env.HF_HOME ?? join(env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "huggingface");
  return join(home(hfHome), "hub");
}

function offlineByEnv(): boolean {
  return /^(1|true|yes|on)$/i.test(process.env.HF_HUB_OFFLINE ?? "");
}

const COMMIT_HASH = /^[0-9a-f]{40}$/;

/** `path` joined to `root`, refused when it would land outside it (checked on the resolved path). */
function inside(root: string, ...parts: string[]): string {
  const base = resolve(root);
  const path = resolve(base, ...parts);
  if (!path.startsWith(base + sep)) throw new HubError(`hub: refusing the cache path ${path}: it is outside the cache folder ${base}`);
  return path;
}

async function isFile(path: string): Promise<number | null> {
  try {
    const info = await stat(path); // follows the snapshot symlink to its blob
    return info.isFile() ? info.size : null;
  } catch {
    return null;
  }
}

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/** What the Hub says about a file at a revision (huggingface_hub's HfFileMetadata). */
interface FileMetadata {
  commit: string;
  /** The blob's name: X-Linked-Etag (LFS: the sha256) or ETag, without quotes and W/. */
  etag: string;
  size: number;
  /** Where the bytes are: the resolve URL itself, or the CDN it redirects to. */
  location: string;
  /** The ETag header of `location` as sent (for If-Range), when the answer came from it. */
  locationEtag: string | null;
}

/** A failure worth another try (network, timeout, 5xx, a transfer cut short). */
class RetryableError extends HubError {}

interface RequestPlan {
  method: "HEAD" | "GET";
  url: string;
  headers: Record<string, string>;
  redirect: "manual" | "follow";
}

/** A Hub model folder, downloaded file by file into the shared disk cache on first use. */
export function cachedHubSource(options: CachedHubOptions): ModelSource {
  const revision = options.revision ?? "main";
  hubFileUrl(options, "config.json"); // check the repo id and revision before anything else
  const endpoint = (options.endpoint ?? DEFAULT_HUB_ENDPOINT).replace(/\/+$/, "");
  const root = resolve(options.cacheDir ?? defaultHubCacheDir());
  const repoDir = inside(root, `models--${options.repo.replace("/", "--")}`);
  const refPath = inside(repoDir, "refs", ...revision.split("/"));
  const connectTimeoutMs = options.connectTimeoutMs ?? 30_000;
  const idleTimeoutMs = options.idleTimeoutMs ?? 30_000;
  const lowSpeed = options.lowSpeedLimit ?? { bytesPerSecond: 1024, windowMs: 60_000 };
  const retries = options.retries ?? 3;
  const retryDelayMs = options.retryDelayMs ?? 1000;

  // The commit this load reads, once known; why the network is not used, once it is not.
  let commit: string | null = COMMIT_HASH.test(revision) ? revision : null;
  let offlineReason: string | null = options.offline ?? offlineByEnv() ? "offline mode (HF_HUB_OFFLINE or options.offline)" : null;
  const label = `${endpoint}/${options.repo}@${revision}`;

  const snapshotPath = (at: string, file: string) => inside(repoDir, "snapshots", at, ...file.split("/"));
  const cached = async (at: string, file: string): Promise<ByteSource | null> => ((await isFile(snapshotPath(at, file))) === null ? null : fileSource(snapshotPath(at, file)));

  async function readRef(): Promise<string | null> {
    try {
      const text = (await readFile(refPath, "utf8")).trim();
      return COMMIT_HASH.test(text) ? text : null;
    } catch {
      return null;
    }
  }

  async function writeRef(at: string): Promise<void> {
    if (at === revision || (await readRef()) === at) return;
    await writeFileAtomic(refPath, at);
  }

  /** One request with a deadline for the answer; the caller gets the signal's controller to stop the body. */
  async function send(plan: RequestPlan): Promise<{ response: Response; controller: AbortController; stopTimers: () => void; reason: () => string | null }> {
    const controller = new AbortController();
    let reason: string | null = null;
    const abort = (why: string) => {
      reason ??= why;
      controller.abort(new Error(why));
    };
    const connect = setTimeout(() => abort(`no answer within ${connectTimeoutMs} ms (connectTimeoutMs)`), connectTimeoutMs);
    const total = options.totalTimeoutMs === undefined ? null : setTimeout(() => abort(`not done within ${options.totalTimeoutMs} ms (totalTimeoutMs)`), options.totalTimeoutMs);
    const stopTimers = () => {
      clearTimeout(connect);
      if (total) clearTimeout(total);
    };
    try {
      const response = await fetch(plan.url, { method: plan.method, headers: plan.headers, redirect: plan.redirect, signal: controller.signal });
      clearTimeout(connect);
      return { response, controller, stopTimers, reason: () => reason };
    } catch (e) {
      stopTimers();
      if (reason) throw new RetryableError(`hub: ${plan.method} ${plan.url} failed: ${reason}`, { url: plan.url });
      const failure = fetchFailure(plan.method, plan.url, e);
      throw failure.unreachable ? failure : new RetryableError(failure.message, { url: plan.url });
    }
  }

  /** Run `attempt` until it succeeds, retrying RetryableErrors with backoff; `unreachable` failures are retried only if asked. */
  async function withRetries<T>(attempt: () => Promise<T>, retryUnreachable: boolean): Promise<T> {
    for (let tries = 0; ; tries++) {
      try {
        return await attempt();
      } catch (e) {
        const retryable = e instanceof RetryableError || (retryUnreachable && e instanceof HubError && e.unreachable);
        if (!retryable || tries >= retries) {
          if (!(e instanceof HubError)) throw e;
          const after = tries > 0 ? ` (after ${tries + 1} tries)` : "";
          throw new HubError(`${e.message}${after}`, { url: e.url, status: e.status, unreachable: e.unreachable });
        }
        await sleep(Math.min(10_000, retryDelayMs * 2 ** tries));
      }
    }
  }

  /** HEAD the resolve URL, following only same-server redirects (a renamed repo), as huggingface_hub does. */
  async function metadata(at: string, file: string): Promise<FileMetadata | null> {
    let url = hubFileUrl({ ...options, revision: at }, file);
    return withRetries(async () => {
      for (let hops = 0; hops < 10; hops++) {
        const { response, stopTimers } = await send({ method: "HEAD", url, headers: { "Accept-Encoding": "identity" }, redirect: "manual" });
        stopTimers();
        const status = response.status;
        const location = response.headers.get("location");
        // Follow relative redirects only (a path on this server: a renamed repo), as huggingface_hub
        // does; "//host/..." is another server. An absolute one is the CDN of an LFS file, answered below.
        if (status >= 300 && status < 400 && location && location.startsWith("/") && !location.startsWith("//")) {
          url = new URL(location, url).href;
          continue;
        }
        const errorCode = response.headers.get("x-error-code");
        if (status === 404 && (errorCode === null || errorCode === "EntryNotFound")) return null;
        if (status === 429 || status === 408 || status >= 500) throw new RetryableError(`hub: HEAD ${url} answered ${status}`, { url, status });
        if (status >= 400) {
          const meaning =
            errorCode === "RepoNotFound" || status === 401 ? `the repo ${options.repo} does not exist, or is private or gated (this client sends no token)`
            : errorCode === "RevisionNotFound" ? `the repo ${options.repo} has no revision "${at}"`
            : errorCode === "GatedRepo" || status === 403 ? `access to ${options.repo} is refused (gated or private)`
            : response.headers.get("x-error-message") ?? "";
          throw new HubError(`hub: HEAD ${url} answered ${status}${meaning ? `: ${meaning}` : ""}`, { url, status });
        }
        if (status >= 300 && !location) throw new HubError(`hub: HEAD ${url} answered ${status} without a Location`, { url, status });
        // huggingface_hub reads the same headers: X-Repo-Commit, X-Linked-Etag or ETag, X-Linked-Size or Content-Length.
        const commitHeader = response.headers.get("x-repo-commit");
        const etagHeader = response.headers.get("x-linked-etag") ?? response.headers.get("etag");
        const etag = etagHeader?.replace(/^W\//, "").replace(/^"|"$/g, "") ?? "";
        const size = Number(response.headers.get("x-linked-size") ?? response.headers.get("content-length") ?? NaN);
        if (!commitHeader || !COMMIT_HASH.test(commitHeader)) {
          throw new HubError(`hub: HEAD ${url} answered without a commit hash in X-Repo-Commit (got ${JSON.stringify(commitHeader)}): is ${endpoint} a Hugging Face Hub server?`, { url, status });
        }
        // The ETag becomes a file name in blobs/: only a plain name may.
        if (!/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/.test(etag) || etag.endsWith(".incomplete")) {
          throw new HubError(`hub: HEAD ${url} answered with ETag ${JSON.stringify(etagHeader)}, which cannot name a blob (letters, digits, . _ - expected)`, { url, status });
        }
        if (!Number.isSafeInteger(size) || size < 0) throw new HubError(`hub: HEAD ${url} did not say the file's size (X-Linked-Size / Content-Length)`, { url, status });
        if (status < 300 && isErrorPage(file, response.headers.get("content-type"))) {
          throw new HubError(`hub: ${url} is a web page (text/html), not ${file}: an error or login page?`, { url, status });
        }
        return {
          commit: commitHeader,
          etag,
          size,
          location: status >= 300 ? new URL(location!, url).href : url,
          locationEtag: status >= 300 ? null : response.headers.get("etag"),
        };
      }
      throw new HubError(`hub: HEAD ${url}: more than 10 redirects`, { url, status: 300 });
    }, false);
  }

  /** Check the finished `.incomplete` against the size and the content hash its ETag names. */
  async function verify(path: string, meta: FileMetadata): Promise<string | null> {
    const size = await isFile(path);
    if (size !== meta.size) return `it has ${size} bytes, the server said ${meta.size}`;
    // LFS files are named by their sha256; git files by git's blob sha1: sha1("blob {size}\0" + bytes).
    const kind = /^[0-9a-f]{64}$/.test(meta.etag) ? "sha256" : /^[0-9a-f]{40}$/.test(meta.etag) ? "sha1" : null;
    if (!kind) return null;
    const hash = createHash(kind);
    if (kind === "sha1") hash.update(`blob ${meta.size}\0`);
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
    const digest = hash.digest("hex");
    return digest === meta.etag ? null : `its ${kind === "sha256" ? "sha256" : "git blob sha1"} is ${digest}, the ETag says ${meta.etag}`;
  }

  /**
   * The ETag of the URL the bytes come from, for If-Range when resuming a download an earlier run began.
   * For LFS files that is the CDN's own ETag, which the Hub's answer does not carry, so ask the CDN. If it
   * will not say, the resume goes without If-Range: the sha256 check before the rename still refuses a
   * file stitched from two versions.
   */
  async function etagOf(url: string): Promise<string | null> {
    try {
      const { response, stopTimers } = await send({ method: "HEAD", url, headers: { "Accept-Encoding": "identity" }, redirect: "follow" });
      stopTimers();
      const etag = response.ok ? response.headers.get("etag") : null;
      return etag && !etag.startsWith("W/") ? etag : null;
    } catch {
      return null;
    }
  }

  /** Download a blob into `{blob}.incomplete`, resuming, checked, then renamed into place. */
  async function download(meta: FileMetadata, blob: string, file: string): Promise<void> {
    const partial = `${blob}.incomplete`;
    let ifRange = meta.locationEtag && !meta.locationEtag.startsWith("W/") ? meta.locationEtag : null;
    const report = (received: number) => options.onProgress?.(file, received, meta.size);
    await withRetries(async () => {
      let have = (await isFile(partial)) ?? 0;
      if (have > meta.size) {
        await rm(partial, { force: true });
        have = 0;
      }
      if (have === meta.size && have > 0) return finish(); // a previous run got every byte but stopped before the rename
      if (have > 0 && !ifRange) ifRange = await etagOf(meta.location);
      const headers: Record<string, string> = { "Accept-Encoding": "identity" };
      if (have > 0) {
        headers.Range = `bytes=${have}-`;
        // If-Range: the server sends the rest only if the file is still the one whose start we have;
        // otherwise the whole new file (200), and we start over instead of appending to old bytes.
        if (ifRange) headers["If-Range"] = ifRange;
      }
      const url = meta.location;
      const { response, controller, stopTimers, reason } = await send({ method: "GET", url, headers, redirect: "follow" });
      try {
        const status = response.status;
        let start: number;
        if (status === 200) start = 0;
        else if (status === 206) {
          const range = parseContentRange(response.headers.get("content-range"));
          if (!range || range.total !== meta.size || range.end !== meta.size - 1 || (range.start !== have && range.start !== 0)) {
            await rm(partial, { force: true });
            throw new RetryableError(`hub: GET ${url} asked for bytes=${have}- and got 206 with Content-Range ${JSON.stringify(response.headers.get("content-range"))} (file size ${meta.size}); starting over`, { url, status });
          }
          start = range.start; // 0 when the server sent the whole file as a 206: start over with it
        } else if (status === 416) {
          // Our partial file is not a prefix the server recognises: drop it, start over.
          await rm(partial, { force: true });
          throw new RetryableError(`hub: GET ${url} answered 416 to bytes=${have}- (file size ${meta.size}); starting over`, { url, status });
        } else if (status === 429 || status === 408 || status >= 500) {
          throw new RetryableError(`hub: GET ${url} answered ${status}`, { url, status });
        } else {
          throw new HubError(`hub: GET ${url} answered ${status}${status === 404 ? " although its HEAD said the file exists" : ""}`, { url, status });
        }
        if (isErrorPage(file, response.headers.get("content-type"))) throw new HubError(`hub: GET ${url} answered with a web page (text/html), not ${file}: an error or login page?`, { url, status });
        const length = Number(response.headers.get("content-length") ?? NaN);
        if (Number.isFinite(length) && start + length !== meta.size) {
          throw new RetryableError(`hub: GET ${url} answered ${status} with Content-Length ${length} from byte ${start}, but the file has ${meta.size} bytes`, { url, status });
        }
        if (!ifRange) {
          const etag = response.headers.get("etag");
          if (etag && !etag.startsWith("W/")) ifRange = etag;
        }
        if (!response.body) throw new RetryableError(`hub: GET ${url} answered ${status} with no body`, { url, status });
        // Only now, with a good answer in hand, does anything appear on disk.
        await mkdir(dirname(partial), { recursive: true });
        const out = await open(partial, start === 0 ? "w" : "r+");
        let position = start;
        try {
          const reader = response.body.getReader();
          let idle: ReturnType<typeof setTimeout> | undefined;
          const armIdle = () => {
            clearTimeout(idle);
            idle = setTimeout(() => controller.abort(new Error(`no data for ${idleTimeoutMs} ms (idleTimeoutMs)`)), idleTimeoutMs);
          };
          armIdle();
          let windowStart = Date.now(), windowBytes = 0;
          const slow = setInterval(() => {
            const elapsed = Date.now() - windowStart;
            if (elapsed >= lowSpeed.windowMs && (windowBytes * 1000) / elapsed < lowSpeed.bytesPerSecond) {
              controller.abort(new Error(`slower than ${lowSpeed.bytesPerSecond} bytes/s over ${lowSpeed.windowMs} ms (lowSpeedLimit)`));
            } else if (elapsed >= lowSpeed.windowMs) {
              windowStart = Date.now();
              windowBytes = 0;
            }
          }, Math.max(10, Math.min(1000, lowSpeed.windowMs / 4)));
          try {
            for (;;) {
              const { done, value } = await reader.read();
              if (done) break;
              armIdle();
              if (position + value.length > meta.size) {
                await rm(partial, { force: true });
                throw new RetryableError(`hub: GET ${url} sent more than the ${meta.size} bytes of the file; starting over`, { url, status });
              }
              await out.write(value, 0, value.length, position);
              position += value.length;
              windowBytes += value.length;
              report(position);
            }
          } catch (e) {
            if (e instanceof HubError) throw e;
            const why = reason() ?? (controller.signal.aborted ? String((controller.signal.reason as Error)?.message ?? "aborted") : (e as Error).message);
            throw new RetryableError(`hub: GET ${url} stopped after ${position} of ${meta.size} bytes: ${why}`, { url, status });
          } finally {
            clearTimeout(idle);
            clearInterval(slow);
          }
        } finally {
          await out.close();
        }
        if (position !== meta.size) throw new RetryableError(`hub: GET ${url} ended after ${position} of ${meta.size} bytes`, { url, status });
        return finish();
      } finally {
        stopTimers();
        if (!controller.signal.aborted) controller.abort(); // release the connection if we left early
      }
    }, true);

    async function finish(): Promise<void> {
      const problem = await verify(partial, meta);
      if (problem) {
        await rm(partial, { force: true });
        throw new RetryableError(`hub: ${meta.location} was downloaded but does not match what the Hub announced: ${problem}; starting over`, { url: meta.location });
      }
      await rename(partial, blob);
    }
  }

  /** snapshots/{commit}/{file} -> ../../blobs/{etag}, relative as huggingface_hub makes it; a copy where symlinks are refused. */
  async function link(blob: string, pointer: string): Promise<void> {
    await mkdir(dirname(pointer), { recursive: true });
    const temp = `${pointer}.${process.pid}.tmp`;
    await rm(temp, { force: true });
    try {
      await symlink(relative(dirname(pointer), blob), temp);
    } catch (e) {
      // Windows without developer mode: huggingface_hub then keeps a copy in the snapshot too.
      if ((e as NodeJS.ErrnoException).code !== "EPERM" && (e as NodeJS.ErrnoException).code !== "EACCES") throw e;
      await copyFile(blob, temp);
    }
    await rename(temp, pointer);
  }

  async function open_(file: string): Promise<ByteSource | null> {
    checkRepoFilePath(file); // shard names come from model.safetensors.index.json: never trusted
    snapshotPath("0".repeat(40), file); // and the path they make must stay in the cache
    if (commit !== null) {
      const hit = await cached(commit, file);
      if (hit || offlineReason !== null) return hit; // offline: a file absent from the snapshot reads as absent
    } else if (offlineReason !== null) {
      commit = await readRef();
      if (commit === null) throw new HubError(`hub: ${label}: ${offlineReason}, and the cache ${repoDir} has no refs/${revision}: download it once online first`);
      return cached(commit, file);
    }
    let meta: FileMetadata | null;
    try {
      meta = await metadata(commit ?? revision, file);
    } catch (e) {
      // No server answered at all (unreachable, or timed out): use what the cache holds for this
      // revision, as huggingface_hub does. An HTTP answer (a 4xx, a bad header) is never papered over.
      if (!(e instanceof HubError && e.status === undefined)) throw e;
      const known = commit ?? (await readRef());
      if (known === null) throw new HubError(`${e.message}; the cache ${repoDir} has no copy of ${options.repo}@${revision} to use instead`, { url: e.url, unreachable: true });
      commit = known;
      offlineReason = `offline (${e.message})`;
      return cached(known, file);
    }
    if (meta === null) return null;
    if (commit === null) commit = meta.commit;
    else if (meta.commit !== commit) throw new HubError(`hub: ${meta.location}: the server answered for commit ${meta.commit}, this load reads ${commit}`, { url: meta.location });
    const pointer = snapshotPath(commit, file);
    if ((await isFile(pointer)) === null) {
      const blob = inside(repoDir, "blobs", meta.etag);
      if ((await isFile(blob)) !== meta.size) await download(meta, blob, file);
      await link(blob, pointer);
    }
    await writeRef(commit);
    return fileSource(pointer);
  }

  return {
    // Once offline, errors about missing files say so: the loader names the source in its messages.
    get name() {
      return offlineReason === null ? label : `${label} (cached snapshot ${commit} only: ${offlineReason})`;
    },
    open: open_,
  };
}
