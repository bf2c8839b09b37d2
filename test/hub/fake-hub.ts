/**
 * A Hugging Face Hub on 127.0.0.1 for tests, speaking the endpoints quantc
 * uses as the Hub does: the revision API, HEAD/GET on resolve URLs with
 * `X-Repo-Commit`, `ETag` (git blob sha1) for small files, a 302 to a CDN
 * URL on another host name with `X-Linked-Etag` (sha256) and `X-Linked-Size` for LFS files,
 * `Range` on the CDN, and `X-Error-Code` on errors (RepoNotFound,
 * RevisionNotFound, EntryNotFound, GatedRepo).
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One commit: file path → bytes. */
export type Files = ReadonlyMap<string, Uint8Array>;

/** A repository: its branches (name → commit hash) and commits. */
export interface FakeRepo {
  readonly branches: Record<string, string>;
  readonly commits: Record<string, Files>;
  /** Gated: only this token may read it. */
  readonly gatedToken?: string;
}

/** A request the hub saw. */
export interface SeenRequest {
  readonly method: string;
  readonly url: string;
  readonly range?: string;
  readonly authorization?: string;
}

/** The running hub. */
export interface FakeHub {
  readonly endpoint: string;
  readonly seen: SeenRequest[];
  /** The next CDN response of `sha256` sends only this many bytes, then drops the connection. */
  cutNext(sha256: string, bytes: number): void;
  close(): Promise<void>;
}

/** The commit hash of `files` (stable, like a git commit id). */
export function commitOf(files: Files): string {
  const h = createHash('sha1');
  for (const [p, b] of [...files].sort(([a], [b]) => a.localeCompare(b))) h.update(`${p}\0`).update(b);
  return h.digest('hex');
}

const isLfs = (path: string): boolean => path.endsWith('.safetensors');
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const gitSha1 = (b: Uint8Array): string => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');

function fail(res: ServerResponse, status: number, code: string): void {
  res.writeHead(status, { 'x-error-code': code, 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: code }));
}

/** Starts a hub serving `repos` (keyed by `org/name`). */
export async function startFakeHub(repos: Record<string, FakeRepo>): Promise<FakeHub> {
  const seen: SeenRequest[] = [];
  const cuts = new Map<string, number>();
  const blobs = new Map<string, Uint8Array>();
  for (const repo of Object.values(repos)) for (const files of Object.values(repo.commits)) for (const b of files.values()) blobs.set(sha256(b), b);
  let endpoint = '';
  let cdnOrigin = '';

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', endpoint);
    seen.push({ method: req.method ?? 'GET', url: url.pathname, range: req.headers.range, authorization: req.headers.authorization });
    const cdn = /^\/cdn\/([0-9a-f]{64})$/.exec(url.pathname);
    if (cdn) return serveBytes(req, res, cdn[1]!);
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/(.+)$/.exec(url.pathname);
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    const m = api ?? resolve;
    if (!m) return fail(res, 404, 'NotFound');
    const repo = repos[m[1]!];
    const auth = req.headers.authorization;
    if (!repo) return fail(res, 401, 'RepoNotFound');
    if (repo.gatedToken !== undefined && auth !== `Bearer ${repo.gatedToken}`) return fail(res, auth ? 403 : 401, 'GatedRepo');
    const rev = decodeURIComponent(m[2]!);
    const commit = repo.commits[rev] ? rev : repo.branches[rev];
    const files = commit === undefined ? undefined : repo.commits[commit];
    if (!files || commit === undefined) return fail(res, 404, 'RevisionNotFound');
    if (api) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: m[1], sha: commit, siblings: [...files.keys()].map((rfilename) => ({ rfilename })) }));
      return;
    }
    const path = decodeURIComponent(m[3]!);
    const bytes = files.get(path);
    if (!bytes) return fail(res, 404, 'EntryNotFound');
    if (isLfs(path)) {
      const sha = sha256(bytes);
      res.writeHead(302, { location: `${cdnOrigin}/cdn/${sha}`, 'x-repo-commit': commit, 'x-linked-etag': `"${sha}"`, 'x-linked-size': String(bytes.length), etag: `"${gitSha1(bytes)}"` });
      res.end();
      return;
    }
    res.writeHead(200, { 'x-repo-commit': commit, etag: `"${gitSha1(bytes)}"`, 'content-length': String(bytes.length) });
    res.end(req.method === 'HEAD' ? undefined : bytes);
  };

  const serveBytes = (req: IncomingMessage, res: ServerResponse, sha: string): void => {
    const bytes = blobs.get(sha);
    if (!bytes) return fail(res, 404, 'EntryNotFound');
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = range ? Number(range[1]) : 0;
    if (start > bytes.length) {
      res.writeHead(416);
      res.end();
      return;
    }
    const body = bytes.subarray(start);
    res.writeHead(range ? 206 : 200, { 'content-length': String(body.length), ...(range ? { 'content-range': `bytes ${start}-${bytes.length - 1}/${bytes.length}` } : {}) });
    const cut = cuts.get(sha);
    if (cut !== undefined) {
      cuts.delete(sha);
      res.write(body.subarray(0, cut), () => res.destroy());
      return;
    }
    res.end(body);
  };

  const server: Server = createServer(handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  endpoint = `http://127.0.0.1:${port}`;
  // LFS bytes live on another host name, as the Hub's CDN does: clients must not expect Hub headers there.
  cdnOrigin = `http://localhost:${port}`;
  return {
    endpoint,
    seen,
    cutNext: (sha, bytes) => void cuts.set(sha, bytes),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** The sha256 of `bytes` (an LFS file's etag). */
export { sha256 };
