/**
 * `--model ORG/NAME[@REVISION]`: the Hugging Face cache first, then a
 * loopback Hub (test/hub/fake-hub.ts) — never the internet.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, describe, expect, test } from 'vitest';
import { main } from '../src/cli/main.js';
import { hubCacheDir, hubOffline, parseModelRef } from '../src/model/hf-cache.js';
import { resolveModelRef } from '../src/model/resolve-model-ref.js';
import { parseSafetensors, serializeSafetensors, type RefTensor } from './execute/fixtures.js';
import { commitOf, sha256, startFakeHub, type FakeHub, type Files } from './hub/fake-hub.js';
import { memoryIo } from './memory-io.js';

const TINY = resolve('test/fixtures/hub/tiny-chat');
const REPO = 'quantc-test/tiny-chat';
const FOLDER = 'models--quantc-test--tiny-chat';
const RECIPE = 'quant_stage:\n  quant_modifiers:\n    QuantizationModifier:\n      targets: [Linear]\n      scheme: FP8_DYNAMIC\n      ignore: [lm_head]\n';

function tinyFiles(): Map<string, Uint8Array> {
  return new Map(readdirSync(TINY).map((f) => [f, new Uint8Array(readFileSync(join(TINY, f)))]));
}

/** The tiny model with another config: a second commit on a branch. */
function withLayers(files: Files, layers: number): Map<string, Uint8Array> {
  const config = JSON.parse(Buffer.from(files.get('config.json')!).toString()) as Record<string, unknown>;
  return new Map([...files, ['config.json', new TextEncoder().encode(JSON.stringify({ ...config, num_hidden_layers: layers }))]]);
}

let hub: FakeHub | undefined;
afterEach(async () => {
  await hub?.close();
  hub = undefined;
});

/** A loopback URL nobody listens on. */
async function deadEndpoint(): Promise<string> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return `http://127.0.0.1:${port}`;
}

/** Temporary folders made by this file, removed at the end. */
const made: string[] = [];
afterAll(async () => {
  for (const dir of made) await rm(dir, { recursive: true, force: true });
});

async function workspace(): Promise<{ cwd: string; cache: string }> {
  const cwd = await mkdtemp(join(tmpdir(), 'quantc-hub-'));
  made.push(cwd);
  await writeFile(join(cwd, 'recipe.yaml'), RECIPE);
  return { cwd, cache: join(cwd, 'hf-cache') };
}

async function run(cwd: string, env: Record<string, string>, ...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = { ...memoryIo(cwd), env };
  const code = await main(argv, io);
  return { code, out: io.out.join(''), err: io.err.join('') };
}

describe('model ids', () => {
  test('org/name[@revision] parses; paths and odd revisions do not', () => {
    expect(parseModelRef('org/name')).toEqual({ repo: 'org/name', revision: 'main', explicitRevision: false });
    expect(parseModelRef('org/na.me-1@refs/pr/3')).toEqual({ repo: 'org/na.me-1', revision: 'refs/pr/3', explicitRevision: true });
    expect(parseModelRef('./dir/x')).toBeUndefined();
    expect(parseModelRef('org/name@../x')).toBeUndefined();
    expect(parseModelRef('a/b/c')).toBeUndefined();
  });

  test("the cache folder and offline mode follow huggingface_hub's environment variables", () => {
    expect(hubCacheDir({ HF_HUB_CACHE: '/a', HUGGINGFACE_HUB_CACHE: '/b', HF_HOME: '/c' })).toBe('/a');
    expect(hubCacheDir({ HUGGINGFACE_HUB_CACHE: '/b', HF_HOME: '/c' })).toBe('/b');
    expect(hubCacheDir({ HF_HOME: '/c', XDG_CACHE_HOME: '/x' })).toBe('/c/hub');
    expect(hubCacheDir({ XDG_CACHE_HOME: '/x' })).toBe('/x/huggingface/hub');
    expect(hubCacheDir({})).toBe(join(homedir(), '.cache', 'huggingface', 'hub'));
    expect(hubCacheDir({ HF_HUB_CACHE: '~/hf' })).toBe(join(homedir(), 'hf'));
    expect([hubOffline({ HF_HUB_OFFLINE: 'yes' }), hubOffline({ TRANSFORMERS_OFFLINE: '1' }), hubOffline({ HF_HUB_OFFLINE: '0' }), hubOffline({})]).toEqual([true, true, false, false]);
  });
});

describe('the Hugging Face cache', () => {
  test('a cached model is read with no network, from the layout huggingface_hub writes', async () => {
    const { cwd, cache } = await workspace();
    execFileSync(process.execPath, ['test/fixtures/scripts/make_hf_cache.mjs', cache]);
    // An endpoint nobody listens on: any request would fail.
    const env = { HF_HUB_CACHE: cache, HF_ENDPOINT: await deadEndpoint() };
    const modules = await run(cwd, env, 'modules', '--model', REPO);
    expect(modules.err).toBe('');
    expect(modules.code).toBe(0);
    expect(modules.out).toContain('model.layers.{0,1}.mlp.{gate,up}_proj');
    const plan = await run(cwd, env, 'plan', 'recipe.yaml', '--model', REPO);
    expect(plan.code).toBe(0);
    expect(plan.out).toContain(REPO);
    // HF_HOME/hub is the cache when HF_HUB_CACHE is not set.
    const home = join(cwd, 'home');
    execFileSync(process.execPath, ['test/fixtures/scripts/make_hf_cache.mjs', join(home, 'hub')]);
    expect((await run(cwd, { HF_HOME: home, HF_HUB_OFFLINE: '1' }, 'match', 'Linear', '--model', REPO)).code).toBe(0);
  });

  test('offline, a model missing from the cache is one line and exit 2', async () => {
    const { cwd, cache } = await workspace();
    const r = await run(cwd, { HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1' }, 'plan', 'recipe.yaml', '--model', 'someone/absent-model@v2');
    expect(r.code).toBe(2);
    expect(r.err).toBe(
      `quantc: "someone/absent-model@v2" is not in the Hugging Face cache at ${cache} (no snapshot of that revision) and HF_HUB_OFFLINE is set; download it first (\`hf download someone/absent-model --revision v2\`) or unset HF_HUB_OFFLINE.\n`,
    );
    const m = await run(cwd, { HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1' }, 'modules', '--model', 'someone/absent-model');
    expect(m.code).toBe(2);
    expect(m.err.split('\n')).toHaveLength(2);
  });

  test('bundled configs still answer offline', async () => {
    const { cwd, cache } = await workspace();
    const r = await run(cwd, { HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1' }, 'modules', '--model', 'meta-llama/Llama-3.1-8B');
    expect(r.code).toBe(0);
    expect(r.out).toContain('LlamaForCausalLM');
  });
});

describe('downloads from the Hub', () => {
  test('apply downloads config, weights and tokenizer into the cache layout, then runs from it', async () => {
    const files = tinyFiles();
    const commit = commitOf(files);
    hub = await startFakeHub({ [REPO]: { branches: { main: commit }, commits: { [commit]: files } } });
    const { cwd, cache } = await workspace();
    const env = { HF_HUB_CACHE: cache, HF_ENDPOINT: hub.endpoint };
    const r = await run(cwd, env, 'apply', 'recipe.yaml', '--model', REPO, '--out', 'out');
    expect(r.err).toContain(`Downloading ${REPO} into the Hugging Face cache (6 files, `);
    expect(r.code).toBe(0);
    const folder = join(cache, FOLDER);
    expect(readFileSync(join(folder, 'refs', 'main'), 'utf8')).toBe(commit);
    const weights = join(folder, 'snapshots', commit, 'model.safetensors');
    expect(lstatSync(weights).isSymbolicLink()).toBe(true);
    expect(readlinkSync(weights)).toBe(`../../blobs/${sha256(files.get('model.safetensors')!)}`);
    expect(readlinkSync(join(folder, 'snapshots', commit, 'config.json'))).toMatch(/^\.\.\/\.\.\/blobs\/[0-9a-f]{40}$/);
    expect(readdirSync(join(folder, 'blobs')).filter((b) => b.endsWith('.incomplete'))).toEqual([]);
    expect(existsSync(join(cwd, 'out', 'model.safetensors'))).toBe(true);
    // A second run is a cache hit: no request at all.
    const before = hub.seen.length;
    expect((await run(cwd, env, 'apply', 'recipe.yaml', '--model', REPO, '--out', 'out2')).code).toBe(0);
    expect(hub.seen.length).toBe(before);
  });

  test('plan fetches config.json only', async () => {
    const files = tinyFiles();
    const commit = commitOf(files);
    hub = await startFakeHub({ [REPO]: { branches: { main: commit }, commits: { [commit]: files } } });
    const { cwd, cache } = await workspace();
    const r = await run(cwd, { HF_HUB_CACHE: cache, HF_ENDPOINT: hub.endpoint }, 'plan', 'recipe.yaml', '--model', REPO);
    expect(r.code).toBe(0);
    expect(readdirSync(join(cache, FOLDER, 'snapshots', commit))).toEqual(['config.json']);
    expect(hub.seen.filter((s) => s.url.includes('/resolve/')).map((s) => s.url)).toEqual([`/${REPO}/resolve/${commit}/config.json`, `/${REPO}/resolve/${commit}/config.json`]);
    // Offline, apply needs the weights this snapshot lacks.
    const offline = await run(cwd, { HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1' }, 'apply', 'recipe.yaml', '--model', REPO, '--out', 'out');
    expect(offline.code).toBe(2);
    expect(offline.err).toContain('(the snapshot lacks its safetensors weights) and HF_HUB_OFFLINE is set');
  });

  test('a revision by branch and by commit hash', async () => {
    const main = tinyFiles();
    const dev = withLayers(main, 1);
    const [mainCommit, devCommit] = [commitOf(main), commitOf(dev)];
    hub = await startFakeHub({ [REPO]: { branches: { main: mainCommit, dev: devCommit }, commits: { [mainCommit]: main, [devCommit]: dev } } });
    const { cwd, cache } = await workspace();
    const env = { HF_HUB_CACHE: cache, HF_ENDPOINT: hub.endpoint };
    const byBranch = await run(cwd, env, 'modules', '--model', `${REPO}@dev`);
    expect(byBranch.code).toBe(0);
    expect(byBranch.out).toContain('model.layers.0.mlp');
    expect(byBranch.out).not.toContain('model.layers.{0,1}');
    expect(readFileSync(join(cache, FOLDER, 'refs', 'dev'), 'utf8')).toBe(devCommit);
    const byCommit = await run(cwd, env, 'modules', '--model', `${REPO}@${mainCommit}`);
    expect(byCommit.code).toBe(0);
    expect(byCommit.out).toContain('model.layers.{0,1}');
    // A commit hash needs no ref file; offline, both revisions now come from the cache.
    expect(existsSync(join(cache, FOLDER, 'refs', mainCommit))).toBe(false);
    const offline = { HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1' };
    expect((await run(cwd, offline, 'modules', '--model', `${REPO}@dev`)).code).toBe(0);
    expect((await run(cwd, offline, 'modules', '--model', `${REPO}@${mainCommit}`)).code).toBe(0);
  });

  test('a gated model: one line that says what to do, then it works with the token', async () => {
    const files = tinyFiles();
    const commit = commitOf(files);
    hub = await startFakeHub({ [REPO]: { branches: { main: commit }, commits: { [commit]: files }, gatedToken: 'hf_good' } });
    const { cwd, cache } = await workspace();
    const anonymous = await run(cwd, { HF_HUB_CACHE: cache, HF_ENDPOINT: hub.endpoint, HF_HOME: join(cwd, 'no-home') }, 'plan', 'recipe.yaml', '--model', REPO);
    expect(anonymous.code).toBe(2);
    expect(anonymous.err).toBe(
      `quantc: "${REPO}" is a gated model: accept its conditions at ${hub.endpoint}/${REPO} and set HF_TOKEN to a token of that account (or run \`hf auth login\`).\n`,
    );
    const wrong = await run(cwd, { HF_HUB_CACHE: cache, HF_ENDPOINT: hub.endpoint, HF_TOKEN: 'hf_other' }, 'plan', 'recipe.yaml', '--model', REPO);
    expect(wrong.code).toBe(2);
    expect(wrong.err).toContain('has not been granted access');
    // The token file `hf auth login` writes is read too.
    await mkdir(join(cwd, 'home'));
    writeFileSync(join(cwd, 'home', 'token'), 'hf_good\n');
    const ok = await run(cwd, { HF_HUB_CACHE: cache, HF_ENDPOINT: hub.endpoint, HF_HOME: join(cwd, 'home') }, 'plan', 'recipe.yaml', '--model', REPO);
    expect(ok.code).toBe(0);
    expect(hub.seen.at(-1)?.authorization).toBe('Bearer hf_good');
    // The weights come from the CDN host, without the token.
    const weights = await run(cwd, { HF_HUB_CACHE: cache, HF_ENDPOINT: hub.endpoint, HF_TOKEN: 'hf_good' }, 'eval', '--model', REPO, '--data', join(TINY, '..', 'data', 'text.jsonl'), '--seq-len', '16');
    expect(weights.code).toBe(0);
    const cdn = hub.seen.filter((r) => r.url.startsWith('/cdn/'));
    expect(cdn.length).toBe(1);
    expect(cdn[0]!.authorization).toBeUndefined();
    expect(hub.seen.filter((r) => r.url.includes('/resolve/')).every((r) => r.authorization === 'Bearer hf_good')).toBe(true);
  });

  test('an interrupted download resumes from its .incomplete file', async () => {
    const files = tinyFiles();
    const commit = commitOf(files);
    hub = await startFakeHub({ [REPO]: { branches: { main: commit }, commits: { [commit]: files } } });
    const weights = files.get('model.safetensors')!;
    const sha = sha256(weights);
    hub.cutNext(sha, 30000);
    const { cwd, cache } = await workspace();
    const env = { HF_HUB_CACHE: cache, HF_ENDPOINT: hub.endpoint };
    const first = await run(cwd, env, 'eval', '--model', REPO, '--data', 'recipe.yaml');
    expect(first.code).toBe(2);
    expect(first.err).toMatch(/^quantc: eval: The download of "model\.safetensors" from "quantc-test\/tiny-chat" stopped after 30000 bytes \(.*\); run again to resume it\.\n$/m);
    const partial = join(cache, FOLDER, 'blobs', `${sha}.incomplete`);
    expect(statSync(partial).size).toBe(30000);
    const second = await run(cwd, env, 'apply', 'recipe.yaml', '--model', REPO, '--out', 'out');
    expect(second.code).toBe(0);
    expect(second.err).toContain('(resumed after 30.0 kB)');
    expect(hub.seen.filter((s) => s.url === `/cdn/${sha}`).map((s) => s.range)).toEqual([undefined, 'bytes=30000-']);
    expect(existsSync(partial)).toBe(false);
    expect(readFileSync(join(cache, FOLDER, 'blobs', sha))).toEqual(Buffer.from(weights));
  });

  test('a partial download that does not match the file is thrown away, not kept', async () => {
    const files = tinyFiles();
    const commit = commitOf(files);
    hub = await startFakeHub({ [REPO]: { branches: { main: commit }, commits: { [commit]: files } } });
    const sha = sha256(files.get('model.safetensors')!);
    const { cwd, cache } = await workspace();
    await mkdir(join(cache, FOLDER, 'blobs'), { recursive: true });
    const partial = join(cache, FOLDER, 'blobs', `${sha}.incomplete`);
    writeFileSync(partial, Buffer.alloc(1000, 7));
    const env = { HF_HUB_CACHE: cache, HF_ENDPOINT: hub.endpoint };
    const first = await run(cwd, env, 'apply', 'recipe.yaml', '--model', REPO, '--out', 'out');
    expect(first.code).toBe(2);
    expect(first.err.endsWith(`\nquantc: The download of "model.safetensors" from "${REPO}" does not match its hash (${sha}); it was removed, run again to download it afresh.\n`)).toBe(true);
    expect(existsSync(partial)).toBe(false);
    expect((await run(cwd, env, 'apply', 'recipe.yaml', '--model', REPO, '--out', 'out')).code).toBe(0);
  });

  test('an unknown model, a bad revision and an unreachable Hub are one line and exit 2', async () => {
    const files = tinyFiles();
    const commit = commitOf(files);
    hub = await startFakeHub({ [REPO]: { branches: { main: commit }, commits: { [commit]: files } } });
    const { cwd, cache } = await workspace();
    const env = { HF_HUB_CACHE: cache, HF_ENDPOINT: hub.endpoint, HF_HOME: join(cwd, 'no-home') };
    const unknown = await run(cwd, env, 'plan', 'recipe.yaml', '--model', 'nobody/nothing');
    expect([unknown.code, unknown.err]).toEqual([2, `quantc: There is no model "nobody/nothing" on ${hub.endpoint} (or it is private: set HF_TOKEN to a token with access).\n`]);
    const badRevision = await run(cwd, env, 'match', 'Linear', '--model', `${REPO}@nope`);
    expect([badRevision.code, badRevision.err]).toEqual([2, `quantc: match: "${REPO}" has no revision "nope" (a branch, tag or commit hash); see ${hub.endpoint}/${REPO}/tree.\n`]);
    const dead = await deadEndpoint();
    const down = await run(cwd, { HF_HUB_CACHE: cache, HF_ENDPOINT: dead }, 'plan', 'recipe.yaml', '--model', REPO);
    expect([down.code, down.err]).toEqual([2, `quantc: Cannot reach ${dead} (ECONNREFUSED); check the network or HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use only the local cache.\n`]);
  });

  test('a sharded checkpoint: the index, then every shard it names, with progress and the time left', async () => {
    const files = tinyFiles();
    const tensors = [...parseSafetensors(files.get('model.safetensors')!)];
    const half = Math.ceil(tensors.length / 2);
    const shards: [string, Map<string, RefTensor>][] = [
      ['model-00001-of-00002.safetensors', new Map(tensors.slice(0, half))],
      ['model-00002-of-00002.safetensors', new Map(tensors.slice(half))],
    ];
    const weightMap = Object.fromEntries(shards.flatMap(([file, ts]) => [...ts.keys()].map((name) => [name, file])));
    files.delete('model.safetensors');
    for (const [file, ts] of shards) files.set(file, new Uint8Array(serializeSafetensors(ts)));
    files.set('model.safetensors.index.json', new TextEncoder().encode(JSON.stringify({ metadata: {}, weight_map: weightMap })));
    // A stray consolidated file the index does not name is not fetched.
    files.set('consolidated.safetensors', new Uint8Array(16));
    const commit = commitOf(files);
    hub = await startFakeHub({ [REPO]: { branches: { main: commit }, commits: { [commit]: files } } });
    const { cwd, cache } = await workspace();
    let clock = 0;
    const lines: string[] = [];
    const found = await resolveModelRef(REPO, { need: 'weights', env: { HF_HUB_CACHE: cache, HF_ENDPOINT: hub.endpoint }, progress: (t) => void lines.push(t), now: () => (clock += 400) });
    expect(found).toMatchObject({ from: 'hub', commit, path: join(cache, FOLDER, 'snapshots', commit) });
    expect(readdirSync(join(cache, FOLDER, 'snapshots', commit)).sort()).toEqual(
      ['chat_template.jinja', 'config.json', 'generation_config.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json', 'tokenizer.json', 'tokenizer_config.json'],
    );
    expect(lines[0]).toMatch(/^Downloading quantc-test\/tiny-chat into the Hugging Face cache \(7 files, [\d.]+ kB\)\n$/);
    expect(lines.some((l) => /^ {2}[\d.]+ kB of [\d.]+ kB \(\d+%\), [\d.]+ kB\/s, about \d+ s left\n$/.test(l))).toBe(true);
    expect(lines.at(-1)).toMatch(/^Downloaded [\d.]+ kB in [\d.]+ s\n$/);
    expect(hub.seen.some((r) => r.url.includes('consolidated'))).toBe(false);
    const run2 = await run(cwd, { HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1' }, 'eval', '--model', REPO, '--data', join(TINY, '..', 'data', 'text.jsonl'), '--seq-len', '16');
    expect(run2.code).toBe(0);
  });
});
