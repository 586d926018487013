import { chmod, copyFile, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SECRET_NAMES } from '../../src/config/secrets.js';
import { dpgc, type CliResult } from '../helpers/cli.js';

/**
 * Bad input, tried as a new user would: the CLI run as a process, each case
 * asserting the exact message (file:line:column, field, what was expected,
 * what to do), the documented exit code, and no stack trace. Every fixture
 * uses loopback addresses, and every command here fails before a host is
 * contacted (see test/fixtures/inventories/README.md).
 */

const FIX = fileURLToPath(new URL('../fixtures/inventories/', import.meta.url));
const INVENTORY_HINT = 'Fix the lines named above; `dpgc schema` prints a JSON Schema your editor can check the file with.';
const SPRINT_HINT = 'Run `dpgc sprint --help` for what each sprint delivers.';

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'dpgc-cli-test-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** Runs dpgc in an empty directory (no ./dpgc.yaml to find by accident). */
function run(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return dpgc(args, { cwd: tmp, env, timeoutMs: 30_000 });
}

/** `stderr` as printed; the helper's execa strips the final newline. */
function expectFailure(r: CliResult, code: number, stderr: string): void {
  expect(r.stderr).toBe(stderr.replace(/\n$/, ''));
  expect(r.stderr).not.toContain('    at ');
  expect(r.stdout).toBe('');
  expect(r.code).toBe(code);
}

// [fixture, its problems as `line:column: path: message`]
const BAD_INVENTORIES: [string, string[]][] = [
  ['address-dns-name.yaml', [
    '4:14: hosts[0].address: expected an IPv4 address such as 10.0.0.11, got the text "db1.example.com": dpgc needs the address itself, not a DNS name',
  ]],
  ['bad-address.yaml', [
    '4:14: hosts[0].address: expected an IPv4 address such as 10.0.0.11, got the text "10.0.0.256": 256 is above 255',
  ]],
  ['bad-host-name.yaml', [
    '3:11: hosts[0].name: expected a short host name of lowercase letters, digits and dashes, such as db1, got the text "DB_1"',
  ]],
  ['cidr-everyone.yaml', [
    '3:19: network.allowed_cidrs[0]: expected a CIDR such as 10.0.0.0/24, got the text "0.0.0.0/0": /0 lets every address on the internet connect; list only your own networks',
  ]],
  ['cidr-prefix-33.yaml', [
    '3:32: network.allowed_cidrs[1]: expected a CIDR such as 10.0.0.0/24, got the text "10.0.0.0/33": the prefix length /33 is out of range; an IPv4 prefix is /1 to /32',
  ]],
  ['cidr-three-octets.yaml', [
    '4:7: network.allowed_cidrs[0]: expected a CIDR such as 10.0.0.0/24, got the text "10.0.0/24": 10.0.0 has 3 parts, not 4',
  ]],
  ['cluster-shell.yaml', [
    '1:10: cluster: expected a cluster name of lowercase letters, digits, _ and -, starting with a letter, such as main, got the text "main; rm -rf /"',
  ]],
  ['duplicate-address.yaml', [
    '7:14: hosts[1].address: address 127.0.0.91 is already used by hosts[0] (db1); every host needs its own address',
  ]],
  ['duplicate-host-name.yaml', [
    '6:11: hosts[1].name: host name "db1" is already used by hosts[0]; every host needs its own name',
  ]],
  ['empty.yaml', [
    '1:1: the file is empty; an inventory needs at least `cluster:` and `hosts:` (`dpgc lab init` writes a complete example)',
  ]],
  ['etcd-even.yaml', [
    '2:1: hosts: 4 hosts have the etcd role; etcd needs an odd number of members (3 or 5): 4 tolerate no more failures than 3. Add etcd to one more host or remove it from one',
  ]],
  ['etcd-too-many.yaml', [
    '2:1: hosts: 9 hosts have the etcd role; use 3 or 5 (more than 7 members slows every write and adds no useful fault tolerance)',
  ]],
  ['list.yaml', [
    '1:1: the inventory must be a mapping of keys (`cluster: …`, `hosts: …`), got a list; `dpgc lab init` writes a complete example',
  ]],
  ['missing-address.yaml', [
    '3:5: hosts[0].address: required field is missing; add it, e.g. `address: 10.0.0.11`',
  ]],
  ['port-as-string.yaml', [
    '7:13: hosts[0].ssh.port: expected a number, got the text "2222"; write 2222 without quotes',
  ]],
  ['port-clash.yaml', [
    '3:14: ports.pgbouncer: port 5432 is used by both postgres and pgbouncer on db1, db2; give one of them another port under `ports:`',
  ]],
  ['port-zero.yaml', [
    '3:13: ports.postgres: expected a port number from 1 to 65535, got 0',
  ]],
  ['relative-root.yaml', [
    '3:64: hosts[0].root: expected an absolute path starting with /, got the text "lab/db1"',
  ]],
  ['roles-not-list.yaml', [
    '5:12: hosts[0].roles: expected a list, got the text "postgres"; write it as a list: [postgres]',
  ]],
  ['sync-count.yaml', [
    '3:27: postgres.synchronous_node_count: synchronous_node_count 3 needs 3 standbys, but 3 postgres hosts give only 2; use at most 2',
  ]],
  ['ttl-loop.yaml', [
    '3:8: timings.ttl: loop_wait + 2 × retry_timeout = 5 + 2 × 4 = 13s exceeds ttl 10s: a leader riding out one etcd hiccup would lose its lock (Patroni requires loop_wait + 2*retry_timeout <= ttl); raise ttl or lower the others',
  ]],
  ['ttl-too-small.yaml', [
    '3:8: timings.ttl: ttl 3s is below 5s: the leader cannot renew its lock in time and demotes itself in a loop; set timings.ttl to 5 or more',
    '3:8: timings.ttl: loop_wait + 2 × retry_timeout = 1 + 2 × 4 = 9s exceeds ttl 3s: a leader riding out one etcd hiccup would lose its lock (Patroni requires loop_wait + 2*retry_timeout <= ttl); raise ttl or lower the others',
  ]],
  ['unknown-key-nested.yaml', [
    '4:3: postgres.synchronous_mod: unknown key "synchronous_mod"; remove it or fix the spelling (keys allowed under postgres: version, vector, ruvector_image, synchronous_commit, synchronous_node_count, max_connections, settings)',
  ]],
  ['unknown-key-top.yaml', [
    '2:1: postgress: unknown key "postgress"; did you mean "postgres"?',
  ]],
  ['unknown-role.yaml', [
    '5:23: hosts[0].roles[1]: expected one of postgres, etcd, haproxy, pgbouncer, monitoring, backup, got the text "etdc"; did you mean etcd?',
  ]],
  ['version-14.yaml', [
    '3:12: postgres.version: expected one of 15, 16, 17, got 14',
  ]],
  ['yaml-bomb.yaml', [
    '1:1: YAML aliases expand too far (Excessive alias count indicates a resource exhaustion attack); write the values out instead of nesting *aliases',
  ]],
  ['yaml-duplicate-key.yaml', [
    '6:5: YAML: "address" appears twice in the same mapping; keep one of them (the file is not guessed at)',
  ]],
  ['yaml-tab.yaml', [
    '3:1: YAML syntax error: Tabs are not allowed as indentation; indent with spaces, not tabs',
  ]],
  ['yaml-tag.yaml', [
    '1:10: YAML: Unresolved tag: tag:yaml.org,2002:js/function; remove the tag: the inventory is plain data',
  ]],
  ['yaml-unclosed.yaml', [
    '4:1: YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ]; check the indentation, and that every [ and { is closed',
  ]],
];

describe('a malformed or dangerous inventory is refused with its position, exit 3', () => {
  it.each(BAD_INVENTORIES)('%s', async (name, problems) => {
    const file = join(FIX, name);
    const r = await run(['-c', file, 'verify']);
    const header = `error: ${file} is not a valid inventory (${problems.length} problem${problems.length === 1 ? '' : 's'}):`;
    expectFailure(r, 3, `${[header, ...problems.map((p) => `  ${file}:${p}`), INVENTORY_HINT].join('\n')}\n`);
  });

  it('a sprint whose role no host has is refused before anything runs', async () => {
    const file = join(FIX, 'no-etcd.yaml');
    const r = await run(['-c', file, 'sprint', '2']);
    expectFailure(
      r,
      3,
      `error: ${file}: sprint 2 needs a host with the role etcd, and no host has it\n` +
        'To fix: add etcd to the roles of 3 (or 5) hosts, e.g. `roles: [postgres, etcd]` on each database host.\n' +
        'Roles go under each host in `hosts:`; `dpgc lab init` writes a complete example.\n',
    );
    expect(existsSync(join(FIX, 'no-etcd.secrets.yaml'))).toBe(false);
  });
});

describe('where the inventory comes from: -c, else DPGC_CONFIG, else ./dpgc.yaml', () => {
  const HINT = 'or create one: `dpgc lab init` (a whole cluster on this machine) or `dpgc init` (your hosts).';

  it('--config pointing nowhere says how to create one', async () => {
    const r = await run(['-c', '/nonexistent/dpgc.yaml', 'verify']);
    expectFailure(r, 3, `error: inventory /nonexistent/dpgc.yaml does not exist\nPass --config <file>, set DPGC_CONFIG, ${HINT}\n`);
  });

  it('DPGC_CONFIG pointing nowhere is named as the source', async () => {
    const r = await run(['verify'], { DPGC_CONFIG: '/nowhere/x.yaml' });
    expectFailure(r, 3, `error: inventory /nowhere/x.yaml (named by DPGC_CONFIG) does not exist\nPass --config <file>, fix or unset DPGC_CONFIG, ${HINT}\n`);
  });

  it('no flag and no DPGC_CONFIG: ./dpgc.yaml', async () => {
    const r = await run(['verify']);
    expectFailure(r, 3, `error: inventory ${join(tmp, 'dpgc.yaml')} does not exist\nPass --config <file>, set DPGC_CONFIG, ${HINT}\n`);
  });

  it('the flag wins over DPGC_CONFIG', async () => {
    const r = await run(['-c', '/nonexistent/flag.yaml', 'verify'], { DPGC_CONFIG: join(FIX, 'valid-minimal.yaml') });
    expectFailure(r, 3, `error: inventory /nonexistent/flag.yaml does not exist\nPass --config <file>, set DPGC_CONFIG, ${HINT}\n`);
  });

  it('--config naming a directory', async () => {
    const r = await run(['-c', tmp, 'verify']);
    expectFailure(r, 3, `error: inventory ${tmp} is a directory\nPass the file inside it, e.g. --config ${tmp}/dpgc.yaml.\n`);
  });
});

describe('flags and arguments: exit 2, nothing loaded', () => {
  it.each([
    [['sprint', '9'], `error: there is no sprint 9: sprints are numbered 0 to 5\n${SPRINT_HINT}\n`],
    [['verify', '--sprint', '9'], `error: there is no sprint 9: sprints are numbered 0 to 5\n${SPRINT_HINT}\n`],
    [['sprint', 'abc'], `error: the sprint must be a number from 0 to 5, got "abc"\n${SPRINT_HINT}\n`],
    [['verify', '--sprint', 'two'], `error: --sprint must be a number from 0 to 5, got "two"\n${SPRINT_HINT}\n`],
    [['sprint'], "error: missing required argument 'n'\n(run with --help for usage)\n"],
    [['pool-test', '--agents', '0'], 'error: --agents must be a whole number of 1 or more, got "0"\nFor example: --agents 40.\n'],
    [['pool-test', '--duration', '5x'], 'error: --duration must be a length of time such as 30s, 5m or 300 (seconds), got "5x"\nFor example: --duration 60s.\n'],
    [['verfy'], "error: unknown command 'verfy'\n(Did you mean verify?)\n(run with --help for usage)\n"],
    [['bogus'], "error: unknown command 'bogus'\n(run with --help for usage)\n"],
    [['--bogus', 'verify'], "error: unknown option '--bogus'\n(run with --help for usage)\n"],
  ])('dpgc %j', async (args, stderr) => {
    expectFailure(await run(args), 2, stderr);
  });
});

describe('the secrets file: missing is fine (generated on need), unsafe or malformed is refused, exit 3', () => {
  let dir: string;
  let inv: string;
  let sec: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmp, 'secrets-'));
    inv = join(dir, 'dpgc.yaml');
    sec = join(dir, 'dpgc.secrets.yaml');
    await copyFile(join(FIX, 'valid-minimal.yaml'), inv);
  });

  it.each([
    ['others', 0o644],
    ['group', 0o640],
  ])('readable by %s', async (_who, mode) => {
    await writeFile(sec, 'replication: abcdefghijklmnop\n');
    await chmod(sec, mode);
    const r = await run(['-c', inv, 'verify']);
    expectFailure(
      r,
      3,
      `error: secrets file ${sec} is readable by group or others (mode ${mode.toString(8)}); dpgc refuses to use it\n` +
        `Run \`chmod 600 ${sec}\`, and rotate the secrets if others could have read them.\n`,
    );
  });

  it('an unknown name and a short value, each with its line, and no value printed', async () => {
    await writeFile(sec, 'replicaton: abcdefghijklmnop\nrewind: short\n', { mode: 0o600 });
    await chmod(sec, 0o600);
    const r = await run(['-c', inv, 'verify']);
    expectFailure(
      r,
      3,
      `error: secrets file ${sec} is not valid (2 problems):\n` +
        `  ${sec}:1:1: replicaton: unknown secret "replicaton"; did you mean "replication"? known secrets: ${SECRET_NAMES.join(', ')}\n` +
        `  ${sec}:2:9: rewind: the value is 5 characters long; a secret needs at least 12 characters. Delete the line and dpgc generates a strong one\n` +
        'Fix the lines named above (dpgc never prints secret values). After changing a secret that is in use, rotate it on the cluster too.\n',
    );
    expect(r.stderr).not.toContain('abcdefghijklmnop');
  });

  it('a mistyped DPGC_SECRET_* is refused rather than silently ignored', async () => {
    await rm(sec, { force: true });
    const r = await run(['-c', inv, 'verify'], { DPGC_SECRET_REPLICATON: 'abcdefghijklmnop' });
    expectFailure(
      r,
      3,
      'error: environment variable DPGC_SECRET_REPLICATON names no secret dpgc knows; did you mean DPGC_SECRET_REPLICATION?\n' +
        `Unset it, or use one of: ${SECRET_NAMES.map((n) => `DPGC_SECRET_${n.toUpperCase()}`).join(', ')}.\n`,
    );
    expect(await readdir(dir)).toEqual(['dpgc.yaml']);
  });
});

describe('nothing prompts in CI', () => {
  it('`dpgc lab down` without --yes is a usage error naming --yes, and removes nothing', async () => {
    const dir = await mkdtemp(join(tmp, 'lab-'));
    const inv = join(dir, 'dpgc.yaml');
    const init = await run(['-c', inv, 'lab', 'init', '--dir', join(dir, 'lab')]);
    expect(init.code).toBe(0);
    const r = await run(['-c', inv, 'lab', 'down']);
    expectFailure(
      r,
      2,
      'error: Stop every process of lab "dpgc-lab" and delete its directory and data? — cannot ask: not interactive (CI or no TTY)\nPass --yes to answer yes.\n',
    );
    expect(existsSync(inv)).toBe(true);
  });

  it('DPGC_CONFIG is used when no -c is given', async () => {
    const dir = await mkdtemp(join(tmp, 'env-'));
    const inv = join(dir, 'lab.yaml');
    expect((await run(['-c', inv, 'lab', 'init', '--dir', join(dir, 'lab')])).code).toBe(0);
    const r = await run(['lab', 'down'], { DPGC_CONFIG: inv });
    expect(r.stderr).toContain('Stop every process of lab "dpgc-lab"');
    expect(r.code).toBe(2);
  });

  it('`dpgc init` explains how to write the inventory instead', async () => {
    const r = await run(['init']);
    expectFailure(
      r,
      2,
      '`dpgc init` asks questions, and cannot ask here: not interactive (CI, --yes, or no TTY)'.replace(/^/, 'error: ') +
        `\nWrite ${join(tmp, 'dpgc.yaml')} yourself (README "The inventory"; \`dpgc schema\` for editor checks), or run \`dpgc lab init\` for a cluster on this machine.\n`,
    );
  });
});
