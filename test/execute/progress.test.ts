import { expect, test } from 'vitest';
import { progressPrinter } from '../../src/execute/progress.js';

test('weight-pass progress says how long is left, on a terminal and in logs', () => {
  let t = 0;
  for (const tty of [false, true]) {
    const out: string[] = [];
    const print = progressPrinter((s) => out.push(s), tty, () => t);
    t = 0;
    print({ kind: 'start', modules: 4, bytesIn: 1e6 });
    t = 2000;
    print({ kind: 'module', index: 1, total: 4, name: 'a', bytesRead: 1 });
    t = 8000;
    print({ kind: 'module', index: 4, total: 4, name: 'd', bytesRead: 1 });
    const text = out.join('');
    expect(text).toContain('1/4 a, about 6 s left');
    expect(text).toMatch(/4\/4 d(\n| *\n)/);
  }
});
