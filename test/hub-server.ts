// A local stand-in for the Hugging Face Hub (node:http on 127.0.0.1, a random port), answering as the
// Hub does so that the download code meets the same headers it meets there:
//   - HEAD/GET {repo}/resolve/{revision}/{file}: X-Repo-Commit (the commit the revision points to);
//     small files are served directly with ETag = git's blob sha1; .safetensors files (LFS on the Hub)
//     answer 302 to a CDN URL with X-Linked-Etag = their sha256 and X-Linked-Size;
//   - GET /cdn/{sha256}: the bytes, with the CDN's own ETag, Range and If-Range;
//   - 404 with X-Error-Code EntryNotFound / RevisionNotFound, 401 RepoNotFound, as the Hub sends them.
// `intercept` lets a test take over any request to play a hostile or broken server.

import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { join } from "node:path";

export interface ServedRepo {
  /** Files by name (a fixture folder read into memory, changed at will by tests). */
  files: Map<string, Uint8Array>;
  /** Branch or tag -> commit hash. */
  revisions: Record<string, string>;
}

export interface Request {
  kind: "resolve" | "cdn";
  method: string;
  file: string;
  body: Uint8Array;
  range: string | undefined;
  ifRange: string | undefined;
}

export const gitBlobSha1 = (bytes: Uint8Array) => createHash("sha1").update(`blob ${bytes.length}\0`).update(bytes).digest("hex");
export const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
const cdnEtag = (bytes: Uint8Array) => `"cdn-${sha256(bytes).slice(0, 16)}"`;

export function folderFiles(dir: string): Map<string, Uint8Array> {
  return new Map(readdirSync(dir).map((name) => [name, new Uint8Array(readFileSync(join(dir, name)))]));
}

export async function startHubServer(repos: Record<string, ServedRepo>) {
  /** Requests seen: "METHOD path [Range] [If-Range]". */
  const log: string[] = [];
  const hub = {
    log,
    endpoint: "",
    /** Return true when the test answered the request itself. */
    intercept: null as null | ((request: Request, res: ServerResponse) => boolean),
    close: () => new Promise<void>((done) => server.close(() => done())),
  };
  const blobs = () => {
    const all = new Map<string, Uint8Array>();
    for (const repo of Object.values(repos)) for (const body of repo.files.values()) all.set(sha256(body), body);
    return all;
  };

  function sendBytes(req: IncomingMessage, res: ServerResponse, body: Uint8Array, headers: Record<string, string>, etag: string) {
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    const ifRange = req.headers["if-range"];
    if (range && (ifRange === undefined || ifRange === etag)) {
      const start = Number(range[1]), end = range[2] ? Number(range[2]) : body.length - 1;
      if (start >= body.length) return void res.writeHead(416, { "content-range": `bytes */${body.length}` }).end();
      res.writeHead(206, { ...headers, etag, "content-length": String(end - start + 1), "content-range": `bytes ${start}-${end}/${body.length}` });
      return void res.end(req.method === "HEAD" ? undefined : body.subarray(start, end + 1));
    }
    res.writeHead(200, { ...headers, etag, "accept-ranges": "bytes", "content-length": String(body.length) });
    res.end(req.method === "HEAD" ? undefined : body);
  }

  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    log.push([req.method, req.url, req.headers.range, req.headers["if-range"]].filter(Boolean).join(" "));
    const cdn = /^\/cdn\/([0-9a-f]{64})$/.exec(path);
    if (cdn) {
      const body = blobs().get(cdn[1]!);
      if (!body) return void res.writeHead(404).end("no such blob");
      if (hub.intercept?.({ kind: "cdn", method: req.method!, file: cdn[1]!, body, range: req.headers.range, ifRange: req.headers["if-range"] as string | undefined }, res)) return;
      return sendBytes(req, res, body, { "content-type": "application/octet-stream" }, cdnEtag(body));
    }
    const match = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    const repo = match && repos[match[1]!];
    if (!match || !repo) return void res.writeHead(401, { "x-error-code": "RepoNotFound" }).end("Repository not found");
    const revision = match[2]!, file = match[3]!;
    const commit = Object.values(repo.revisions).includes(revision) ? revision : repo.revisions[revision];
    if (!commit) return void res.writeHead(404, { "x-error-code": "RevisionNotFound" }).end("Revision not found");
    const body = repo.files.get(file);
    if (!body) return void res.writeHead(404, { "x-error-code": "EntryNotFound", "x-repo-commit": commit }).end("Entry not found");
    if (hub.intercept?.({ kind: "resolve", method: req.method!, file, body, range: req.headers.range, ifRange: req.headers["if-range"] as string | undefined }, res)) return;
    if (file.endsWith(".safetensors")) {
      const sha = sha256(body);
      res.writeHead(302, { location: `${hub.endpoint}/cdn/${sha}`, "x-repo-commit": commit, "x-linked-etag": `"${sha}"`, "x-linked-size": String(body.length), etag: `"${sha}"` });
      return void res.end();
    }
    sendBytes(req, res, body, { "x-repo-commit": commit, "content-type": file.endsWith(".json") ? "application/json" : "text/plain" }, `"${gitBlobSha1(body)}"`);
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  hub.endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return hub;
}

/** Every path under `dir`, relative, sorted: what a test looked at on disk. */
export function treeOf(dir: string, prefix = ""): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(dir, prefix), { withFileTypes: true })) {
    const path = prefix ? `${prefix}/${entry.name}` : entry.name;
    out.push(path);
    if (entry.isDirectory()) out.push(...treeOf(dir, path));
  }
  return out.sort();
}
