/**
 * The few Hub endpoints quantc needs, over Node's fetch, writing into the
 * Python cache layout (`hf-cache.ts`):
 *
 *   GET  /api/models/<repo>/revision/<rev>  the commit hash and the file list
 *   HEAD /<repo>/resolve/<commit>/<file>    etag (`X-Linked-Etag` for LFS files, else `ETag`),
 *                                           size (`X-Linked-Size`, else `Content-Length`),
 *                                           and where the bytes are (a redirect to a CDN)
 *   GET  <that location>                    the bytes, with `Range` to resume a partial download
 *
 * A download grows `blobs/<etag>.incomplete`, kept when interrupted and
 * resumed from its size on the next run (a server that ignores `Range`
 * restarts it), checked against the etag (the content's sha256, or git's
 * blob sha1), then renamed to `blobs/<etag>` and linked from the snapshot. Errors are `HubError`s with one-line messages that say what to do.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, statSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { blobPaths, linkSnapshotFile, type ModelRef } from './hf-cache.js';

/** Why a Hub request failed; each is a documented diagnostic code. */
export type HubErrorCode =
  | 'hub-repo-not-found'
  | 'hub-revision-not-found'
  | 'hub-gated'
  | 'hub-unauthorized'
  | 'hub-file-not-found'
  | 'hub-unreachable'
  | 'hub-download-failed';

/** A failed Hub request; `message` is one line for the user. */
export class HubError extends Error {
  constructor(
    readonly code: HubErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Where the Hub is and who asks. */
export interface HubClient {
  /** `HF_ENDPOINT` without a trailing slash (default https://huggingface.co). */
  readonly endpoint: string;
  /** `HF_TOKEN` (or the token file huggingface_hub's login wrote), if any. */
  readonly token?: string;
  readonly cache: string;
}

/** A revision's commit and files. */
export interface RevisionInfo {
  readonly commit: string;
  readonly files: readonly string[];
}

/** What HEAD says about one file. */
export interface RemoteFile {
  readonly path: string;
  readonly etag: string;
  readonly size: number | undefined;
  /** Where to GET the bytes (the CDN location of a redirect, or the resolve URL itself). */
  readonly url: string;
}

/** Bytes of one download so far, for progress. */
export type DownloadProgress = (file: string, bytes: number) => void;

function headers(client: HubClient, extra: Record<string, string> = {}): Record<string, string> {
  return { 'user-agent': 'quantc', ...(client.token ? { authorization: `Bearer ${client.token}` } : {}), ...extra };
}

/** A fetch whose network failure is a HubError naming the endpoint. */
async function request(client: HubClient, url: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    throw new HubError('hub-unreachable', `cannot reach ${client.endpoint} (${cause?.code ?? cause?.message ?? (e as Error).message}); check the network or HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use only the local cache`);
  }
}

/** The HubError for a failed response, from its status and the Hub's `X-Error-Code`. */
function responseError(client: HubClient, res: Response, ref: ModelRef, file?: string): HubError {
  const code = res.headers.get('x-error-code');
  const page = `${client.endpoint}/${ref.repo}`;
  if (code === 'GatedRepo') {
    return new HubError(
      'hub-gated',
      client.token
        ? `"${ref.repo}" is a gated model and the account of HF_TOKEN has not been granted access: accept its conditions at ${page}, then run again`
        : `"${ref.repo}" is a gated model: accept its conditions at ${page} and set HF_TOKEN to a token of that account (or run \`hf auth login\`)`,
    );
  }
  if (code === 'RevisionNotFound') return new HubError('hub-revision-not-found', `"${ref.repo}" has no revision "${ref.revision}" (a branch, tag or commit hash); see ${page}/tree`);
  if (code === 'EntryNotFound') return new HubError('hub-file-not-found', `"${ref.repo}" at "${ref.revision}" has no file "${file ?? ''}"`);
  if (code === 'RepoNotFound' || (res.status === 404 && file === undefined)) {
    return new HubError('hub-repo-not-found', `there is no model "${ref.repo}" on ${client.endpoint}${client.token ? '' : ' (or it is private: set HF_TOKEN to a token with access)'}`);
  }
  if (res.status === 401 || res.status === 403) {
    return new HubError(
      'hub-unauthorized',
      client.token
        ? `${client.endpoint} refused HF_TOKEN for "${ref.repo}" (HTTP ${res.status}): the model is private or gated and this token has no access to it, or the token is invalid`
        : `"${ref.repo}" needs authentication on ${client.endpoint} (HTTP ${res.status}): it is private, gated or does not exist; set HF_TOKEN to a token with access (or run \`hf auth login\`)`,
    );
  }
  if (res.status === 404) return new HubError('hub-file-not-found', `"${ref.repo}" at "${ref.revision}" has no file "${file ?? ''}"`);
  return new HubError('hub-download-failed', `${client.endpoint} answered HTTP ${res.status} for "${ref.repo}"${file ? ` file "${file}"` : ''}`);
}

/** The commit `ref.revision` points at and the files of that commit. */
export async function revisionInfo(client: HubClient, ref: ModelRef): Promise<RevisionInfo> {
  const url = `${client.endpoint}/api/models/${ref.repo}/revision/${encodeURIComponent(ref.revision)}`;
  const res = await request(client, url, { headers: headers(client) });
  if (!res.ok) throw responseError(client, res, ref);
  const body = (await res.json().catch(() => null)) as { sha?: unknown; siblings?: { rfilename?: unknown }[] } | null;
  if (typeof body?.sha !== 'string' || !Array.isArray(body.siblings)) {
    throw new HubError('hub-download-failed', `${client.endpoint} answered an unexpected body for the revision "${ref.revision}" of "${ref.repo}"`);
  }
  return { commit: body.sha, files: body.siblings.map((s) => s.rfilename).filter((f): f is string => typeof f === 'string') };
}

/** `W/"abc"` or `"abc"` → `abc`, as huggingface_hub normalizes etags. */
function normalizeEtag(etag: string | null): string | undefined {
  return etag ? etag.replace(/^W\//, '').replace(/^"|"$/g, '') : undefined;
}

/** HEAD of one file at `commit`, following only same-host redirects (the headers that matter are on the Hub's own answer). */
export async function headFile(client: HubClient, ref: ModelRef, commit: string, path: string): Promise<RemoteFile> {
  let url = `${client.endpoint}/${ref.repo}/resolve/${commit}/${path.split('/').map(encodeURIComponent).join('/')}`;
  for (let hops = 0; ; hops++) {
    const res = await request(client, url, { method: 'HEAD', redirect: 'manual', headers: headers(client, { 'accept-encoding': 'identity' }) });
    const location = res.headers.get('location');
    const etag = normalizeEtag(res.headers.get('x-linked-etag') ?? res.headers.get('etag'));
    if (res.status >= 300 && res.status < 400 && location) {
      const next = new URL(location, url);
      // A relative redirect (a renamed repository) is followed; an absolute one points at the bytes.
      if (location.startsWith('/') && hops < 5 && !etag) {
        url = next.href;
        continue;
      }
      if (!etag) break;
      const size = Number(res.headers.get('x-linked-size') ?? res.headers.get('content-length') ?? NaN);
      return { path, etag, size: Number.isFinite(size) ? size : undefined, url: next.href };
    }
    if (!res.ok) throw responseError(client, res, ref, path);
    if (!etag) break;
    const size = Number(res.headers.get('x-linked-size') ?? res.headers.get('content-length') ?? NaN);
    return { path, etag, size: Number.isFinite(size) ? size : undefined, url };
  }
  throw new HubError('hub-download-failed', `${client.endpoint} sent no ETag for "${path}" of "${ref.repo}"; cannot place it in the cache`);
}

/** The hash of file `path` in the etag's kind (64 hex digits: sha256; 40: git blob sha1), or undefined for other etags. */
async function contentHash(path: string, etag: string, size: number): Promise<string | undefined> {
  const kind = /^[0-9a-f]{64}$/.test(etag) ? 'sha256' : /^[0-9a-f]{40}$/.test(etag) ? 'sha1' : undefined;
  if (!kind) return undefined;
  const hash = createHash(kind);
  if (kind === 'sha1') hash.update(`blob ${size}\0`);
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Puts `file` into the cache's blobs (resuming a partial download) and
 * links it from snapshot `commit`. Returns the bytes downloaded now.
 */
export async function downloadFile(client: HubClient, ref: ModelRef, commit: string, file: RemoteFile, progress: DownloadProgress = () => undefined): Promise<number> {
  const { blob, incomplete } = blobPaths(client.cache, ref.repo, file.etag);
  if (existsSync(blob)) {
    linkSnapshotFile(client.cache, ref.repo, commit, file.path, file.etag);
    return 0;
  }
  await mkdir(dirname(blob), { recursive: true });
  let have = existsSync(incomplete) ? statSync(incomplete).size : 0;
  if (file.size !== undefined && have > file.size) {
    await rm(incomplete, { force: true });
    have = 0;
  }
  let fetched = 0;
  if (file.size === undefined || have < file.size) {
    // The token goes to the Hub only, never to the host a redirect points at (the Hub's CDN URLs are signed).
    const sameHost = new URL(file.url).origin === new URL(client.endpoint).origin;
    const extra = { 'accept-encoding': 'identity', ...(have > 0 ? { range: `bytes=${have}-` } : {}) };
    const res = await request(client, file.url, { headers: sameHost ? headers(client, extra) : { 'user-agent': 'quantc', ...extra } });
    if (res.status === 416 && file.size !== undefined && have === file.size) {
      // Nothing left to fetch.
    } else {
      if (!res.ok) throw responseError(client, res, ref, file.path);
      // 200 to a Range request: the server sends the whole file; start over.
      if (have > 0 && res.status !== 206) have = 0;
      progress(file.path, have);
      const out = createWriteStream(incomplete, { flags: have > 0 ? 'a' : 'w' });
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
          fetched += chunk.length;
          progress(file.path, have + fetched);
        }
      } catch (e) {
        await new Promise<void>((r) => out.end(() => r()));
        throw new HubError(
          'hub-download-failed',
          `the download of "${file.path}" from "${ref.repo}" stopped after ${have + fetched} bytes (${(e as Error).message}); run again to resume it`,
        );
      }
      await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    }
  }
  const size = statSync(incomplete).size;
  if (file.size !== undefined && size !== file.size) {
    throw new HubError('hub-download-failed', `the download of "${file.path}" from "${ref.repo}" ended at ${size} of ${file.size} bytes; run again to resume it`);
  }
  // The etag is the content's hash (sha256 for LFS files, git's blob sha1 otherwise): a resumed or raced download must match it.
  const actual = await contentHash(incomplete, file.etag, size);
  if (actual !== undefined && actual !== file.etag) {
    await rm(incomplete, { force: true });
    throw new HubError('hub-download-failed', `the download of "${file.path}" from "${ref.repo}" does not match its hash (${file.etag}); it was removed, run again to download it afresh`);
  }
  await rename(incomplete, blob);
  linkSnapshotFile(client.cache, ref.repo, commit, file.path, file.etag);
  return fetched;
}
