/**
 * Installs onnxruntime's CUDA execution provider next to onnxruntime-node,
 * from the npm registry alone: the package
 * com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9 ships
 * libonnxruntime_providers_cuda.so and libonnxruntime_providers_shared.so
 * built for onnxruntime 1.29.0, CUDA 13 and cuDNN 9. They are copied into
 * node_modules/onnxruntime-node/bin/napi-v6/linux/x64/, after which
 * `quantc apply --device cuda` can use the GPU. Run as `npm run setup:cuda`.
 *
 * On CUDA 12 machines that can reach onnxruntime's own download host, the
 * official route is preferred: `npm install onnxruntime-node@1.29.0
 * --onnxruntime-node-install=cuda12`.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const PROVIDER_PACKAGE = 'com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9';
const ORT_VERSION = '1.29.0';
const LIBS = ['libonnxruntime_providers_cuda.so', 'libonnxruntime_providers_shared.so'];

function fail(message: string): never {
  process.stderr.write(`setup:cuda: ${message}\n`);
  process.exit(1);
}

if (process.platform !== 'linux' || process.arch !== 'x64') fail(`the CUDA provider package is for linux-x64; this is ${process.platform}-${process.arch}.`);
const require = createRequire(import.meta.url);
let ortPackage = '';
try {
  ortPackage = require.resolve('onnxruntime-node/package.json');
} catch {
  fail('onnxruntime-node is not installed; run `npm ci` first.');
}
const version = JSON.parse(readFileSync(ortPackage, 'utf8')).version;
if (version !== ORT_VERSION) fail(`onnxruntime-node is ${version}, but ${PROVIDER_PACKAGE} is built for ${ORT_VERSION}.`);
const target = join(dirname(ortPackage), 'bin', 'napi-v6', 'linux', 'x64');
if (!existsSync(join(target, 'libonnxruntime.so.1'))) fail(`${target} has no libonnxruntime.so.1; reinstall onnxruntime-node.`);

const work = mkdtempSync(join(tmpdir(), 'quantc-cuda-'));
try {
  process.stdout.write(`fetching ${PROVIDER_PACKAGE} from the npm registry …\n`);
  execFileSync('npm', ['pack', '--silent', PROVIDER_PACKAGE], { cwd: work, stdio: ['ignore', 'ignore', 'inherit'] });
  const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'));
  if (!tarball) fail('npm pack produced no tarball.');
  execFileSync('tar', ['xzf', tarball], { cwd: work });
  const libDir = join(work, 'package', 'Plugins', 'Linux', 'x64');
  for (const lib of LIBS) {
    if (!existsSync(join(libDir, lib))) fail(`${PROVIDER_PACKAGE} has no ${lib}.`);
    copyFileSync(join(libDir, lib), join(target, lib));
    process.stdout.write(`installed ${join(target, lib)}\n`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
process.stdout.write('done. The CUDA provider needs CUDA 13 and cuDNN 9 libraries on LD_LIBRARY_PATH; try `quantc apply … --device cuda`.\n');
