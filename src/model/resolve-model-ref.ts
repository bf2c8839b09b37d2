/**
 * `--model ORG/NAME[@REVISION]`: the local folder a model id stands for.
 * The Hugging Face cache is read first (no network when it holds what the
 * command needs); a bundled config serves `plan`, `modules` and `match`
 * next, as before; otherwise the files are downloaded from the Hub into the
 * cache, unless `HF_HUB_OFFLINE` forbids it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { error, suggestion, type Diagnostic } from '../diagnostics.js';
import { formatBytes } from '../plan/estimate.js';
import { cachedCommit, hfHome, hubCacheDir, hubOffline, parseModelRef, snapshotDir, writeRef, type HubEnv, type ModelRef } from './hf-cache.js';
import { downloadFile, headFile, HubError, revisionInfo, type HubClient, type RemoteFile } from './hub-client.js';
import { bundledConfig, bundledModelIds } from './hub.js';

/** What a command reads: `config` (plan, modules, match) or the weights and tokenizer too (apply, eval). */
export type ModelFiles = 'config' | 'weights';

/** Where the model was found. */
export interface ResolvedModel {
  /** The snapshot folder. */
  readonly path: string;
  readonly from: 'cache' | 'hub';
  readonly ref: ModelRef;
  readonly commit: string;
}

/** How to resolve: the environment (cache, endpoint, token, offline) and where progress goes. */
export interface ResolveOptions {
  readonly need: ModelFiles;
  readonly env: HubEnv;
  /** Download progress (stderr); nothing when absent. */
  readonly progress?: (text: string) => void;
  readonly isTty?: boolean;
  /** Milliseconds, for the rate and the time left (performance.now by default). */
  readonly now?: () => number;
}

const CONFIG = 'config.json';
const INDEX = 'model.safetensors.index.json';
const SINGLE = 'model.safetensors';
/** Files apply and eval read besides config and weights, when the repository has them. */
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'chat_template.jinja', 'generation_config.json'];

/** The shards a snapshot's index names, or undefined when it has no readable index. */
function indexShards(dir: string): string[] | undefined {
  try {
    const index = JSON.parse(readFileSync(join(dir, INDEX), 'utf8')) as { weight_map?: Record<string, string> };
    return [...new Set(Object.values(index.weight_map ?? {}))];
  } catch {
    return undefined;
  }
}

/** True when snapshot `dir` holds what `need` reads (a dangling link counts as missing). */
function snapshotComplete(dir: string, need: ModelFiles): boolean {
  if (!existsSync(join(dir, CONFIG))) return false;
  if (need === 'config') return true;
  const shards = existsSync(join(dir, INDEX)) ? indexShards(dir) : [SINGLE];
  return shards !== undefined && shards.length > 0 && shards.every((s) => existsSync(join(dir, s)));
}

/** The token: `HF_TOKEN`, the legacy `HUGGING_FACE_HUB_TOKEN`, or the file `hf auth login` wrote. */
function hubToken(env: HubEnv): string | undefined {
  const direct = env['HF_TOKEN'] || env['HUGGING_FACE_HUB_TOKEN'];
  if (direct) return direct.trim();
  try {
    return readFileSync(env['HF_TOKEN_PATH'] || join(hfHome(env), 'token'), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** A HubError as a diagnostic sentence; an unknown repository near a bundled id gets "Did you mean …?". */
function hubDiagnostic(e: HubError, ref: ModelRef): Diagnostic {
  const near = e.code === 'hub-repo-not-found' ? nearBundled(ref.repo) : '';
  return error(e.code, `${e.message[0]!.toUpperCase()}${e.message.slice(1)}.${near}`);
}

/** " Did you mean …?" for a bundled id one typo away, keeping sizes and versions (70B is not 8B). */
function nearBundled(repo: string): string {
  const digits = (id: string): string => id.replace(/\D/g, '');
  return suggestion(repo, bundledModelIds().filter((id) => digits(id) === digits(repo)));
}

/**
 * The folder `arg` stands for when it is a model id (`org/name[@rev]`):
 * a diagnostic when it cannot be had, undefined when `arg` is not a model
 * id or a bundled config answers it (the caller then loads `arg` as before).
 */
export async function resolveModelRef(arg: string, o: ResolveOptions): Promise<ResolvedModel | Diagnostic | undefined> {
  const ref = parseModelRef(arg);
  if (!ref) return undefined;
  const cache = hubCacheDir(o.env);
  const cached = cachedCommit(cache, ref);
  if (cached && snapshotComplete(snapshotDir(cache, ref.repo, cached), o.need)) {
    return { path: snapshotDir(cache, ref.repo, cached), from: 'cache', ref, commit: cached };
  }
  if (o.need === 'config' && !ref.explicitRevision && bundledConfig(ref.repo)) return undefined;
  const at = ref.explicitRevision ? `@${ref.revision}` : '';
  if (hubOffline(o.env)) {
    const what = cached && existsSync(join(snapshotDir(cache, ref.repo, cached), CONFIG)) ? 'its safetensors weights' : 'its config.json';
    return error(
      'hub-not-cached',
      `"${ref.repo}${at}" is not in the Hugging Face cache at ${cache} (${cached ? `the snapshot lacks ${what}` : 'no snapshot of that revision'}) and HF_HUB_OFFLINE is set; download it first (\`hf download ${ref.repo}${ref.explicitRevision ? ` --revision ${ref.revision}` : ''}\`) or unset HF_HUB_OFFLINE.${nearBundled(ref.repo)}`,
    );
  }
  const client: HubClient = { endpoint: (o.env['HF_ENDPOINT'] || 'https://huggingface.co').replace(/\/+$/, ''), token: hubToken(o.env), cache };
  try {
    return await download(client, ref, o);
  } catch (e) {
    if (e instanceof HubError) return hubDiagnostic(e, ref);
    throw e;
  }
}

async function download(client: HubClient, ref: ModelRef, o: ResolveOptions): Promise<ResolvedModel> {
  const info = await revisionInfo(client, ref);
  const present = new Set(info.files);
  if (!present.has(CONFIG)) throw new HubError('hub-file-not-found', `"${ref.repo}" at "${ref.revision}" has no config.json, so it is not a transformers model quantc can read`);
  const wanted = [CONFIG];
  if (o.need === 'weights') {
    wanted.push(...TOKENIZER_FILES.filter((f) => present.has(f)));
    if (present.has(INDEX)) wanted.push(INDEX);
    else if (present.has(SINGLE)) wanted.push(SINGLE);
    else throw new HubError('hub-file-not-found', `"${ref.repo}" at "${ref.revision}" has no ${SINGLE} or ${INDEX}; quantc reads safetensors weights only`);
  }
  const dir = snapshotDir(client.cache, ref.repo, info.commit);
  const heads: RemoteFile[] = [];
  for (const f of wanted) if (!existsSync(join(dir, f))) heads.push(await headFile(client, ref, info.commit, f));
  // The index first (small): it names the shards, so the progress knows the whole size before any byte of weights.
  const index = heads.find((h) => h.path === INDEX);
  if (index) await downloadFile(client, ref, info.commit, index);
  if (o.need === 'weights' && present.has(INDEX)) {
    const shards = indexShards(dir);
    if (!shards) throw new HubError('hub-download-failed', `the ${INDEX} of "${ref.repo}" is not valid JSON with a weight_map`);
    for (const s of shards.filter((s) => !existsSync(join(dir, s)))) {
      if (!present.has(s)) throw new HubError('hub-file-not-found', `"${ref.repo}" at "${ref.revision}" has no "${s}", which its ${INDEX} names`);
      heads.push(await headFile(client, ref, info.commit, s));
    }
  }
  const rest = heads.filter((h) => h !== index);
  const meter = progressMeter(o, `${ref.repo}${ref.explicitRevision ? `@${ref.revision}` : ''}`);
  for (const h of rest) meter.add(h);
  for (const h of rest) await downloadFile(client, ref, info.commit, h, meter.onBytes);
  meter.done();
  writeRef(client.cache, ref, info.commit);
  return { path: dir, from: 'hub', ref, commit: info.commit };
}

/** Download progress on stderr: one header line, then the bytes so far with the rate and the time left, at most once a second. */
function progressMeter(o: ResolveOptions, label: string): { add(f: RemoteFile): void; onBytes(file: string, bytes: number): void; done(): void } {
  const write = o.progress ?? (() => undefined);
  const sizes = new Map<string, number>();
  const got = new Map<string, number>();
  const now = o.now ?? (() => performance.now());
  const started = now();
  // The first line of bytes comes after a second: small downloads print only their header and end.
  let last = started;
  let announced = false;
  let resumed = 0;
  const total = (): number => [...sizes.values()].reduce((a, b) => a + b, 0);
  const sum = (): number => [...got.values()].reduce((a, b) => a + b, 0);
  const line = (): string => {
    const seconds = (now() - started) / 1000;
    const done = sum();
    const rate = seconds > 0 ? (done - resumed) / seconds : 0;
    const left = rate > 0 && done < total() ? `, about ${Math.ceil((total() - done) / rate)} s left` : '';
    return `  ${formatBytes(done)} of ${formatBytes(total())} (${total() > 0 ? Math.floor((done / total()) * 100) : 100}%), ${formatBytes(rate)}/s${left}`;
  };
  return {
    add(f) {
      sizes.set(f.path, f.size ?? 0);
    },
    onBytes(file, bytes) {
      if (!announced) {
        announced = true;
        write(`Downloading ${label} into the Hugging Face cache (${sizes.size} file${sizes.size === 1 ? '' : 's'}, ${formatBytes(total())})\n`);
      }
      // The first report of a file is what a partial download already held.
      if (!got.has(file)) resumed += bytes;
      got.set(file, bytes);
      const t = now();
      if (t - last < 1000) return;
      last = t;
      write(o.isTty ? `\r${line()}\x1b[K` : `${line()}\n`);
    },
    done() {
      if (!announced) return;
      write(`${o.isTty ? '\r' : ''}Downloaded ${formatBytes(sum() - resumed)} in ${((now() - started) / 1000).toFixed(1)} s${resumed > 0 ? ` (resumed after ${formatBytes(resumed)})` : ''}${o.isTty ? '\x1b[K' : ''}\n`);
    },
  };
}
