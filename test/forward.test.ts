import { describe, expect, test } from 'vitest';
import { ForwardModel } from '../src/execute/forward/executor.js';
import { forwardRefs, modelWithTokenizer, relativeError } from './calibrate-refs.js';

describe('forward executor matches transformers 5.17 (fp32)', () => {
  test('llama: every layer output and the logits', async () => {
    const ref = await forwardRefs('llama');
    const model = await ForwardModel.open(await modelWithTokenizer('llama'));
    const layers: Float32Array[] = [];
    const hidden = await model.layers(await model.embed([ref.inputIds]), { onLayer: (layer, _b, h) => (layers[layer] = h.data) });
    expect(layers).toHaveLength(ref.layers.length);
    for (let i = 0; i < ref.layers.length; i++) expect(relativeError(layers[i]!, ref.layers[i]!), `layer ${i}`).toBeLessThan(1e-5);
    const [logits] = await model.head(hidden, 'logits');
    expect(logits).toHaveLength(ref.logits.length);
    expect(relativeError(logits!, ref.logits)).toBeLessThan(1e-5);
  });
});
