import { describe, expect, it } from 'vitest';
import { assertOwnedPath, pathProblem } from '../../src/hosts/owned.js';

describe('deletions only inside what dpgc owns', () => {
  it.each([
    ['relative', 'not an absolute path'],
    ['/a/../b', 'contains a `.` or `..` component'],
    ['/a/./b', 'contains a `.` or `..` component'],
    ['/a//b', 'not normalised (it normalises to /a/b)'],
    ['/a/b/', 'not normalised (it normalises to /a/b)'],
    ['/a/\nb', 'contains a control character'],
  ])('%j is not a clean path', (p, problem) => {
    expect(pathProblem(p)).toBe(problem);
  });

  it('passes a clean path strictly inside an owner, and refuses the owner itself, a sibling, `..` and `/`', () => {
    expect(assertOwnedPath('/lab/run/x.pid', ['/lab/run'], 'pid file')).toBe('/lab/run/x.pid');
    expect(() => assertOwnedPath('/lab/run', ['/lab/run'], 'pid file')).toThrow(/not inside a directory dpgc owns/);
    expect(() => assertOwnedPath('/lab/running/x', ['/lab/run'], 'pid file')).toThrow(/not inside a directory dpgc owns/);
    expect(() => assertOwnedPath('/lab/run/../../etc', ['/lab/run'], 'pid file')).toThrow(/contains a `.` or `..` component/);
    expect(() => assertOwnedPath('/etc', ['/'], 'anything')).toThrow(/not inside a directory dpgc owns/);
  });
});
