// Model folders on the Hugging Face Hub (or any server with its layout), as the OLMo model card loads
// them with `from_pretrained(repo, revision="step1000-tokens4B")`:
//
//   {endpoint}/{repo}/resolve/{revision}/{file}
//
// The endpoint defaults to https://huggingface.co (the HF_ENDPOINT convention lets users point
// elsewhere). Files are read with HTTP Range requests, so a safetensors header and then one tensor at
// a time cross the network, never a whole shard in one buffer. This uses only fetch, so it runs in
// every host; Node's on-disk cache, shared with Python's huggingface_hub, is in src/node/hub.ts.
//
// Repo ids, revisions and file names end up in URLs here and in paths of the Node cache, so they are
// checked once, here, against the Hub's own rules: a name that could climb out of a folder
// (`../evil`, a shard named `../../x` in an index file) is refused before anything is fetched.

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

export interface HubErrorDetails {
  /** The URL whose request failed. */
  url?: string;
  /** The HTTP status the server answered, when it answered. */
  status?: number;
  /** True when no server could be reached at all (DNS failure, connection refused): likely offline. */
  unreachable?: boolean;
}

export class HubError extends Error {
  readonly url?: string;
  readonly status?: number;
  readonly unreachable: boolean;
  constructor(message: string, details: HubErrorDetails = {}) {
    super(message);
    this.name = "HubError";
    this.url = details.url;
    this.status = details.status;
    this.unreachable = details.unreachable ?? false;
  }
}

// --- names: the Hub's rules -------------------------------------------------------------------------

/**
 * Check a repo id as huggingface_hub's validate_repo_id does: "owner/name", each part letters, digits,
 * `-`, `_`, `.`, not starting or ending with `-` or `.`, at most 96 characters; `--` and `..` are
 * forbidden (the cache folder `models--owner--name` relies on the first, paths on the second).
 */
export function checkRepoId(repo: string): void {
  const part = /^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?$/;
  const parts = typeof repo === "string" ? repo.split("/") : [];
  const problem =
    parts.length !== 2 || !parts.every((p) => part.test(p))
      ? 'it must look like "owner/name": letters, digits, "-", "_" and "." (not first or last), at most 96 per part'
      : repo.includes("--") || repo.includes("..")
        ? '"--" and ".." are not allowed'
        : repo.endsWith(".git")
          ? 'it must not end with ".git"'
          : null;
  if (problem) throw new HubError(`hub: repo "${String(repo)}" is not a valid Hugging Face repo id: ${problem}`);
}

/**
 * Check a revision: a branch or tag name as git allows it (check-ref-format: no `..`, no `//`, no
 * leading or trailing `/`, no part starting with `.` or ending in `.lock`, none of `~^:?*[\` or space or
 * control characters, no `@{`), or a commit hash. Slashes are allowed (`refs/pr/1`).
 */
export function checkRevision(revision: string): void {
  const problem =
    typeof revision !== "string" || revision.length === 0 || revision.length > 255
      ? "it must have 1 to 255 characters"
      : /[\x00-\x20\x7f~^:?*[\\]/.test(revision)
        ? "spaces, control characters and ~ ^ : ? * [ \\ are not allowed"
        : revision.includes("..") || revision.includes("@{") || revision === "@"
          ? '".." and "@{" are not allowed'
          : revision.startsWith("/") || revision.endsWith("/") || revision.includes("//")
            ? "it must not start or end with / or contain //"
            : revision.split("/").some((p) => p.startsWith(".") || p.endsWith(".lock")) || revision.endsWith(".")
              ? 'no part may start with "." or end with ".lock", and it must not end with "."'
              : null;
  if (problem) throw new HubError(`hub: revision "${String(revision)}" is not a valid branch, tag or commit: ${problem}`);
}

/** Check a file name inside a repo: a relative path with `/` between parts, no `..`, `.` or empty parts, no `\`. */
export function checkRepoFilePath(file: string): void {
  const problem =
    typeof file !== "string" || file.length === 0 || file.length > 1024
      ? "it must have 1 to 1024 characters"
      : file.includes("\\")
        ? "backslashes are not allowed (use /)"
        : /[\x00-\x1f\x7f]/.test(file)
          ? "control characters are not allowed"
          : file.startsWith("/") || /^[A-Za-z]:/.test(file)
            ? "it must be relative, not an absolute path"
            : file.split("/").some((p) => p === "" || p === "." || p === "..")
              ? 'its parts must not be empty, "." or ".."'
              : null;
  if (problem) throw new HubError(`hub: file name "${String(file)}" is not a valid path inside a repo: ${problem}`);
}

/** The URL of a file in a repo at a revision, after checking all three. */
export function hubFileUrl(options: HubOptions, file: string): string {
  checkRepoId(options.repo);
  checkRevision(options.revision ?? "main");
  checkRepoFilePath(file);
  const endpoint = (options.endpoint ?? DEFAULT_HUB_ENDPOINT).replace(/\/+$/, "");
  // As huggingface_hub's hf_hub_url: the revision is one URL segment even when it holds a "/".
  const revision = encodeURIComponent(options.revision ?? "main");
  return `${endpoint}/${options.repo}/resolve/${revision}/${file.split("/").map(encodeURIComponent).join("/")}`;
}

// --- errors a fetch can end with ----------------------------------------------------------------------

/** Error codes that mean no server answered at all (DNS, routing, nothing listening). */
const UNREACHABLE_CODES = new Set(["ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ENETUNREACH", "EHOSTUNREACH", "ENETDOWN"]);

/**
 * A HubError for a fetch that threw (no HTTP answer). fetch's own message is only "fetch failed"; the
 * reason (a DNS failure, a refused connection) sits in `cause`, sometimes inside an AggregateError
 * (one per address tried), so it is dug out and named, with the URL.
 */
export function fetchFailure(method: string, url: string, error: unknown): HubError {
  const codes: string[] = [];
  const reasons: string[] = [];
  const visit = (e: unknown, depth: number) => {
    if (!e || typeof e !== "object" || depth > 4) return;
    const { code, message, cause, errors } = e as { code?: unknown; message?: unknown; cause?: unknown; errors?: unknown };
    if (typeof code === "string") codes.push(code);
    if (typeof message === "string" && message && message !== "fetch failed" && !reasons.includes(message)) reasons.push(message);
    visit(cause, depth + 1);
    if (Array.isArray(errors)) for (const inner of errors) visit(inner, depth + 1);
  };
  visit(error, 0);
  const unreachable = codes.some((c) => UNREACHABLE_CODES.has(c));
  const why = reasons.length ? reasons.join("; ") : String(error);
  const hint = unreachable ? " (no server answered: this machine seems to be offline, or the endpoint is wrong or down)" : "";
  return new HubError(`hub: ${method} ${url} failed: ${why}${hint}`, { url, unreachable });
}

/** A text/html answer for a file that is not a web page is an error page (a login wall, a proxy), not the file. */
export function isErrorPage(file: string, contentType: string | null): boolean {
  return /^\s*text\/html\b/i.test(contentType ?? "") && !/\.html?$/i.test(file);
}

/** `bytes START-END/TOTAL` of a 206 answer, or null when the header is missing or malformed. */
export function parseContentRange(header: string | null): { start: number; end: number; total: number | null } | null {
  const match = /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(header ?? "");
  if (!match) return null;
  return { start: Number(match[1]), end: Number(match[2]), total: match[3] === "*" ? null : Number(match[3]) };
}

// --- reading straight from the server -----------------------------------------------------------------

function fetchOf(options: HubOptions): FetchLike {
  const f = options.fetch ?? (globalThis as { fetch?: FetchLike }).fetch;
  if (!f) throw new HubError("hub: this host has no fetch; pass options.fetch");
  return f;
}

async function request(fetch: FetchLike, method: string, url: string, headers?: Record<string, string>): Promise<ResponseLike> {
  try {
    return await fetch(url, { method, headers });
  } catch (e) {
    throw fetchFailure(method, url, e);
  }
}

/** A remote file as a ByteSource (size from a HEAD request, reads with Range), or null if absent. */
export async function remoteFile(url: string, fetch: FetchLike, file = url): Promise<ByteSource | null> {
  const head = await request(fetch, "HEAD", url);
  if (head.status === 404) return null;
  if (!head.ok) throw new HubError(`hub: HEAD ${url} answered ${head.status}`, { url, status: head.status });
  if (isErrorPage(file, head.headers.get("content-type"))) throw new HubError(`hub: ${url} is a web page (text/html), not the file: an error or login page?`, { url });
  const size = Number(head.headers.get("content-length") ?? NaN);
  if (!Number.isSafeInteger(size) || size < 0) throw new HubError(`hub: ${url} did not say its size (no Content-Length)`, { url });
  return {
    name: url,
    size,
    read: async (offset, length) => {
      if (length === 0) return new Uint8Array(0);
      const range = `bytes=${offset}-${offset + length - 1}`;
      const response = await request(fetch, "GET", url, { Range: range });
      if (!response.ok) throw new HubError(`hub: GET ${url} ${range} answered ${response.status}`, { url, status: response.status });
      const bytes = new Uint8Array(await response.arrayBuffer());
      let slice: Uint8Array;
      if (response.status === 206) {
        // A 206 must carry the range asked for; another range (or the whole file) would be read as the
        // wrong tensor without a word.
        const got = parseContentRange(response.headers.get("content-range"));
        if (!got || got.start !== offset || got.end !== offset + length - 1 || (got.total !== null && got.total !== size)) {
          throw new HubError(`hub: GET ${url} ${range} answered 206 with Content-Range "${response.headers.get("content-range")}" (file size ${size})`, { url, status: 206 });
        }
        slice = bytes;
      } else {
        // A server that ignores Range sends the whole file (200): take the slice asked for.
        if (bytes.length !== size) throw new HubError(`hub: GET ${url} answered 200 with ${bytes.length} bytes, but HEAD said ${size}: the file changed or the answer is cut`, { url, status: 200 });
        slice = bytes.subarray(offset, offset + length);
      }
      if (slice.length !== length) throw new HubError(`hub: ${url} returned ${slice.length} bytes for a ${length}-byte range`, { url, status: response.status });
      return slice;
    },
  };
}

/** A model folder on the Hub, read over the network with Range requests. */
export function hubSource(options: HubOptions): ModelSource {
  const fetch = fetchOf(options);
  hubFileUrl(options, "config.json"); // check the repo id and revision now, not at the first file
  return {
    name: `${options.repo}@${options.revision ?? "main"}`,
    open: (file) => remoteFile(hubFileUrl(options, file), fetch, file),
  };
}

/** A model folder at a URL (a static server, a CDN): `${baseUrl}/${file}`, read with Range requests. */
export function urlSource(baseUrl: string, fetch?: FetchLike): ModelSource {
  const f = fetch ?? (globalThis as { fetch?: FetchLike }).fetch;
  if (!f) throw new HubError("urlSource: this host has no fetch; pass one");
  const base = baseUrl.replace(/\/+$/, "");
  return {
    name: base,
    open: (file) => {
      checkRepoFilePath(file); // a shard name from an index file must not reach outside the folder
      return remoteFile(`${base}/${file.split("/").map(encodeURIComponent).join("/")}`, f, file);
    },
  };
}
