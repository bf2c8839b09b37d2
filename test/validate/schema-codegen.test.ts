import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { generateValidatorSource, validatorNames } from '../../src/validate/schema-codegen.js';
import { MODIFIER_TYPES } from '../../src/validate/modifiers.js';

const schema = JSON.parse(readFileSync(new URL('../../schemas/recipe.schema.json', import.meta.url), 'utf8'));

describe('schemas/recipe.schema.json and its precompiled validators', () => {
  it('has one definition per registered modifier', () => {
    expect(validatorNames(schema).filter((n) => n.endsWith('Modifier')).sort()).toEqual([...MODIFIER_TYPES].sort());
  });
  it('src/validate/validators.generated.ts is up to date (regenerate: npm run build && node dist/src/validate/schema-codegen.js)', () => {
    const committed = readFileSync(new URL('../../src/validate/validators.generated.ts', import.meta.url), 'utf8');
    expect(committed === generateValidatorSource(schema)).toBe(true);
  });
});
