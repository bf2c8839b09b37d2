/**
 * The local Hugging Face cache as `huggingface_hub` lays it out, so models
 * downloaded by Python tools are found here and models quantc downloads are
 * found by them:
 *
 *   <cache>/models--<org>--<name>/refs/<revision>        the commit hash a branch or tag points at
 *   <cache>/models--<org>--<name>/snapshots/<hash>/<file> a relative symlink into blobs/
 *   <cache>/models--<org>--<name>/blobs/<etag>           the file's bytes, named by its etag
 *
 * `<cache>` is `HF_HUB_CACHE`, else `HUGGINGFACE_HUB_CACHE`, else
 * `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`, else
 * `~/.cache/huggingface/hub` (huggingface_hub's `constants.py`).
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, relative } from 'node:path';

/** A model on the Hub: `org/name`, at `revision` (a branch, tag or commit hash; default `main`). */
export interface ModelRef {
  readonly repo: string;
  readonly revision: string;
  /** True when the revision was written after `@`; otherwise it is the default `main`. */
  readonly explicitRevision: boolean;
}

/** The environment variables the cache and the Hub client read. */
export type HubEnv = Readonly<Record<string, string | undefined>>;

/** A full commit hash: a snapshot folder's name. */
export const COMMIT_HASH = /^[0-9a-f]{40}$/;

/** `org/name[@revision]` as a ModelRef, or undefined when `arg` does not have that shape. */
export function parseModelRef(arg: string): ModelRef | undefined {
  const m = /^([A-Za-z0-9][\w.-]*\/[\w.-]+?)(?:@([^\s@]+))?$/.exec(arg);
  if (!m || m[1]!.includes('..') || m[1]!.endsWith('.')) return undefined;
  const revision = m[2];
  if (revision !== undefined && (revision.split('/').some((p) => p === '' || p === '.' || p === '..') || revision.includes('\\'))) return undefined;
  return { repo: m[1]!, revision: revision ?? 'main', explicitRevision: revision !== undefined };
}

/** huggingface_hub's truthy environment values ("1", "ON", "YES", "TRUE", any case). */
export function envTrue(value: string | undefined): boolean {
  return value !== undefined && ['1', 'ON', 'YES', 'TRUE'].includes(value.toUpperCase());
}

function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? join(homedir(), p.slice(1)) : p;
}

/** The cache folder for `env` (see the module comment). */
export function hubCacheDir(env: HubEnv): string {
  const explicit = env['HF_HUB_CACHE'] || env['HUGGINGFACE_HUB_CACHE'];
  if (explicit) return expandHome(explicit);
  return join(hfHome(env), 'hub');
}

/** `HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`. */
export function hfHome(env: HubEnv): string {
  if (env['HF_HOME']) return expandHome(env['HF_HOME']);
  return join(env['XDG_CACHE_HOME'] ? expandHome(env['XDG_CACHE_HOME']) : join(homedir(), '.cache'), 'huggingface');
}

/** True when `HF_HUB_OFFLINE` (or `TRANSFORMERS_OFFLINE`) forbids the network. */
export function hubOffline(env: HubEnv): boolean {
  return envTrue(env['HF_HUB_OFFLINE'] || env['TRANSFORMERS_OFFLINE']);
}

/** `models--org--name`: the repository's folder in the cache. */
export function repoFolderName(repo: string): string {
  return `models--${repo.split('/').join('--')}`;
}

/** The repository's folder in cache `cache`. */
export function repoFolder(cache: string, repo: string): string {
  return join(cache, repoFolderName(repo));
}

/** The commit hash `revision` resolves to in the cache: itself when it is a full hash, else `refs/<revision>`'s content. */
export function cachedCommit(cache: string, ref: ModelRef): string | undefined {
  const folder = repoFolder(cache, ref.repo);
  if (COMMIT_HASH.test(ref.revision)) return existsSync(join(folder, 'snapshots', ref.revision)) ? ref.revision : undefined;
  try {
    const hash = readFileSync(join(folder, 'refs', ref.revision), 'utf8').trim();
    return COMMIT_HASH.test(hash) ? hash : undefined;
  } catch {
    return undefined;
  }
}

/** The snapshot folder of `commit`. */
export function snapshotDir(cache: string, repo: string, commit: string): string {
  return join(repoFolder(cache, repo), 'snapshots', commit);
}

/** The blob file of `etag`, and the partial download it grows from. */
export function blobPaths(cache: string, repo: string, etag: string): { blob: string; incomplete: string } {
  const blob = join(repoFolder(cache, repo), 'blobs', etag);
  return { blob, incomplete: `${blob}.incomplete` };
}

/** Records that `revision` points at `commit` (refs/<revision>, written atomically); nothing for a commit hash. */
export function writeRef(cache: string, ref: ModelRef, commit: string): void {
  if (ref.revision === commit) return;
  const path = join(repoFolder(cache, ref.repo), 'refs', ref.revision);
  if (existsSync(path) && readFileSync(path, 'utf8') === commit) return;
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, commit);
  renameSync(tmp, path);
}

/** Points snapshot file `file` of `commit` at blob `etag` with a relative symlink, as huggingface_hub does. */
export function linkSnapshotFile(cache: string, repo: string, commit: string, file: string, etag: string): string {
  const target = join(snapshotDir(cache, repo, commit), file);
  const { blob } = blobPaths(cache, repo, etag);
  mkdirSync(dirname(target), { recursive: true });
  rmSync(target, { force: true });
  symlinkSync(relative(dirname(target), blob), target);
  return target;
}
