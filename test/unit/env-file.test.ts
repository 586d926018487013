import { describe, expect, it } from 'vitest';
import { parseEnvFile } from '../../src/hosts/env-file.js';
import { q } from '../../src/templates.js';

const systemdQuote = q.systemd;

describe('environment files are data, never shell', () => {
  it('takes a plain value literally, whatever it holds', () => {
    expect(parseEnvFile('A=$(touch /tmp/x) `id` ${HOME} "q" \\n\n', 'f')).toEqual({ A: '$(touch /tmp/x) `id` ${HOME} "q" \\n' });
  });

  it("unquotes one single-quoted sh word, '\\'' standing for a quote", () => {
    expect(parseEnvFile("P='it'\\''s $(no)'\nE=''\n", 'f')).toEqual({ P: "it's $(no)", E: '' });
  });

  it('skips blank lines and comments; a later line wins', () => {
    expect(parseEnvFile('# c\n\n  \nA=1\nA=2\r\n', 'f')).toEqual({ A: '2' });
  });

  it.each([
    ['export A=1', /f:1: not a KEY=VALUE line/],
    ['a=1', /f:1: not a KEY=VALUE line/],
    ['1A=1', /f:1: not a KEY=VALUE line/],
    ['A B=1', /f:1: not a KEY=VALUE line/],
    ['NOEQUALS', /f:1: not a KEY=VALUE line/],
    ["A='unclosed", /f:1: a value starting with ' must be one single-quoted sh word/],
    ["A='one' 'two'", /f:1: a value starting with ' must be one single-quoted sh word/],
    ['A=nul\0byte', /f:1: A contains a NUL byte/],
  ])('refuses %j', (line, message) => {
    expect(() => parseEnvFile(`${line}\n`, 'f')).toThrow(message);
  });
});

describe('systemd unit words', () => {
  it('quotes, escapes and doubles % so a value stays one value', () => {
    expect(systemdQuote('A=x y "z" \\ 100%')).toBe('"A=x y \\"z\\" \\\\ 100%%"');
    expect(() => systemdQuote('A=x\nExecStartPre=/bin/sh')).toThrow(/newline/);
  });
});
