/** Warns about asymmetric KV-cache quantization, which vLLM cannot run. */
import { warning, type Diagnostic } from '../../diagnostics.js';
import { isRecord } from '../../ir/quant-args.js';
import { argSpan, type RuleContext } from '../context.js';

/** llm-compressor: "vLLM does not support asymmetric kv cache quantization". */
export function kvCacheAsymmetric(ctx: RuleContext): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const m of ctx.modifiers) {
    const kv = m.args.kv_cache_scheme;
    if (isRecord(kv) && kv.symmetric === false) {
      out.push(warning('kv-cache-asymmetric', 'vLLM does not support asymmetric KV-cache quantization.', argSpan(ctx, m, '/kv_cache_scheme/symmetric')));
    }
  }
  return out;
}
