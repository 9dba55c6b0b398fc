import { describe, expect, it } from 'vitest';
import { seedTextToJson, seedToJson } from '../../src/contracts/seed.js';

describe('seeds in JSON', () => {
  it('are numbers: JS numbers while exact, bigints (written out digit for digit) above 2^53 - 1', () => {
    expect(seedToJson(0n)).toBe(0);
    expect(seedToJson(2n ** 53n - 1n)).toBe(Number.MAX_SAFE_INTEGER);
    expect(seedToJson(2n ** 53n)).toBe(9007199254740992n);
    expect(seedToJson(2n ** 64n - 1n)).toBe(18446744073709551615n);
  });

  it('go back as decimal strings when the task sent its seed as one', () => {
    expect(seedToJson(42n, true)).toBe('42');
    expect(seedToJson(2n ** 64n - 1n, true)).toBe('18446744073709551615');
    expect(seedTextToJson('42', true)).toBe('42');
    expect(seedTextToJson('0042', true)).toBe('42');
    expect(seedTextToJson('18446744073709551615', true)).toBe('18446744073709551615');
  });

  it('read from a worker’s decimal text give what the BigInt route gives, digit count by digit count', () => {
    const texts = ['0', '7', '007', '42', '999999999999999', '1000000000000000', '9007199254740990', '9007199254740991', '9007199254740992', '9007199254740993', '9999999999999999', '0009007199254740993', '0009007199254740991', '00000000000000000042', '12345678901234567', '18446744073709551615'];
    for (let digits = 1; digits <= 20; digits++) texts.push('9'.repeat(digits), `1${'0'.repeat(digits - 1)}`);
    for (const text of texts) expect(seedTextToJson(text), text).toStrictEqual(seedToJson(BigInt(text)));
  });
});
