import { chmod, copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
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
  ['cidr-half-internet.yaml', [
    "3:19: network.allowed_cidrs[0]: expected a CIDR such as 10.0.0.0/24, got the text \"0.0.0.0/1\": /1 spans 2,147,483,648 addresses, far more than any cluster's own networks; list only those (/8 or narrower)",
    "3:30: network.allowed_cidrs[1]: expected a CIDR such as 10.0.0.0/24, got the text \"128.0.0.0/1\": /1 spans 2,147,483,648 addresses, far more than any cluster's own networks; list only those (/8 or narrower)",
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
  ['etcd-one.yaml', [
    '2:1: hosts: 1 host has the etcd role; etcd needs 3 (or 5) members, so that losing one keeps a quorum: with 1, its loss stops every write (Patroni demotes the primary). Add etcd to two more hosts',
  ]],
  ['etcd-too-many.yaml', [
    '2:1: hosts: 9 hosts have the etcd role; use 3 or 5 (more than 7 members slows every write and adds no useful fault tolerance)',
  ]],
  ['grafana-file-url.yaml', [
    '3:8: grafana.url: expected an http:// or https:// URL such as http://10.0.0.10:3000, got the text "file:///etc/passwd"',
  ]],
  ['image-and-repo.yaml', [
    '2:29: postgres.ruvector_image: expected a Docker image pinned by tag or digest, such as ruvnet/ruvector-postgres:2.0.4, got the text "ruvnet/ruvector-postgres:2.0.4;id"',
    "3:22: backup.repo_path: expected an absolute path such as /srv/dpgc, got the text \"/var/lib/it's\": \"'\" is not allowed; use letters, digits, ., _, - and /",
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
  ['root-dotdot.yaml', [
    '3:70: hosts[0].root: expected an absolute path such as /srv/dpgc, got the text "/srv/lab/../../db1": a ".." segment is not allowed; write the directory it leads to',
    '4:70: hosts[1].root: expected an absolute path such as /srv/dpgc, got the text "/srv/lab//db2/": write it normalised, as /srv/lab/db2',
    '5:70: hosts[2].root: expected an absolute path such as /srv/dpgc, got the text "/srv/lab/db3\\n": it contains a control character (a newline, tab or the like)',
  ]],
  ['root-shell.yaml', [
    '3:9: defaults.root: expected an absolute path such as /srv/dpgc, got the text "/srv/lab/$(touch /tmp/dpgc-root-shell-ran)": "$", "(", " ", ")" are not allowed; use letters, digits, ., _, - and /',
  ]],
  ['settings-newline.yaml', [
    '4:5: postgres.settings["work_mem = 1\\nshared_preload_libraries"]: expected a PostgreSQL setting name of lowercase letters, digits, _ and ., such as work_mem, got the text "work_mem = 1\\nshared_preload_libraries"',
    "5:23: postgres.settings.application_name: expected a value on one line, without control characters, got the text \"x\\narchive_command = 'sh -c id'\"",
    '6:5: postgres.settings.Work_Mem: expected a PostgreSQL setting name of lowercase letters, digits, _ and ., such as work_mem, got the text "Work_Mem"',
  ]],
  ['ssh-values.yaml', [
    '3:16: defaults.ssh.user: expected a user name of lowercase letters, digits, _ and -, starting with a letter or _, such as admin, got the text "root;id"',
    '3:32: defaults.ssh.key: expected an absolute path or ~/… such as ~/.ssh/id_ed25519 or /etc/dpgc/id_ed25519, got the text "~/.ssh/`id`": "`" is not allowed; use letters, digits, ., _, - and /',
    '3:60: defaults.ssh.known_hosts: expected an absolute path or ~/… such as ~/.ssh/id_ed25519 or /etc/dpgc/id_ed25519, got the text "known_hosts": start it with / or ~/',
  ]],
  ['sync-count.yaml', [
    '3:27: postgres.synchronous_node_count: synchronous_node_count 3 needs 3 standbys, but 3 postgres hosts give only 2; use at most 2',
  ]],
  ['ttl-huge.yaml', [
    '3:8: timings.ttl: expected a number of at most 300, got 99999999',
  ]],
  ['ttl-loop.yaml', [
    '3:8: timings.ttl: loop_wait + 2 × retry_timeout = 5 + 2 × 8 = 21s exceeds ttl 20s: a leader riding out one etcd hiccup would lose its lock (Patroni requires loop_wait + 2*retry_timeout <= ttl, and Patroni would run with ttl 20, loop_wait 4, retry_timeout 8 instead, and failover would not take what dpgc computes); raise ttl or lower the others',
  ]],
  ['ttl-too-small.yaml', [
    "3:8: timings.ttl: ttl 3s is below Patroni's minimum of 20s: Patroni would run with ttl 20, loop_wait 1, retry_timeout 6 instead, and failover would not take what dpgc computes; set timings.ttl to 20 or more",
    '3:8: timings.ttl: loop_wait + 2 × retry_timeout = 1 + 2 × 6 = 13s exceeds ttl 3s: a leader riding out one etcd hiccup would lose its lock (Patroni requires loop_wait + 2*retry_timeout <= ttl, and Patroni would run with ttl 20, loop_wait 1, retry_timeout 6 instead, and failover would not take what dpgc computes); raise ttl or lower the others',
  ]],
  ['unknown-key-nested.yaml', [
    '4:3: postgres.synchronous_mod: unknown key "synchronous_mod"; remove it or fix the spelling (keys allowed under postgres: version, vector, ruvector_image, synchronous_commit, synchronous_node_count, max_connections, profile, storage, hnsw_ef_search, settings)',
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

  it('--config naming a FIFO is refused at once (reading it would hang)', async () => {
    const fifo = join(tmp, 'inventory.fifo');
    execFileSync('mkfifo', [fifo]);
    const r = await run(['-c', fifo, 'verify']);
    expectFailure(r, 3, `error: inventory ${fifo} is not a regular file (a pipe, socket or device); dpgc reads its inventory only from a file\nWrite the inventory to a file and pass that with --config.\n`);
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
    [['verify', '--sprint', '1', '--all'], 'error: --sprint and --all exclude each other: verify one sprint, or all of them\nPass --sprint 1 or --all, not both.\n'],
    [['verify', '--junit', '/no/such/dir/x.xml'], 'error: --junit /no/such/dir/x.xml: the directory /no/such/dir does not exist\nCreate it first (mkdir -p /no/such/dir), or pass a path in an existing directory.\n'],
    [
      ['failover-test'],
      'error: failover-test needs --mode, the failure to cause: one of switchover, kill, crash, stop, freeze, partition, etcd-member, replica\n' +
        'A drill disrupts the live cluster, so it never picks one for you. For example: --mode switchover (a planned leader change, the gentlest).\n',
    ],
    [['verfy'], "error: unknown command 'verfy'\n(Did you mean verify?)\n(run with --help for usage)\n"],
    [['bogus'], "error: unknown command 'bogus'\n(run with --help for usage)\n"],
    [['--bogus', 'verify'], "error: unknown option '--bogus'\n(run with --help for usage)\n"],
  ])('dpgc %j', async (args, stderr) => {
    expectFailure(await run(args), 2, stderr);
  });
});

describe('the secrets file: unsafe or malformed is refused, exit 3 (missing: test/integration/safety-inputs.test.ts)', () => {
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
        `  ${sec}:1:1: replicaton: unknown secret "replicaton"; did you mean "replication"? known secrets: ${SECRET_NAMES.join(', ')}, receiver_<name> for each alert receiver, and pending_<name> for a rotation under way\n` +
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

describe("the cluster CA's files: unsafe or mismatched is refused before any host is touched, exit 3", () => {
  let dir: string;
  let inv: string;
  let caDir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmp, 'ca-'));
    inv = join(dir, 'dpgc.yaml');
    caDir = join(dir, 'dpgc.ca');
    await copyFile(join(FIX, 'valid-minimal.yaml'), inv);
    await writeFile(join(dir, 'dpgc.secrets.yaml'), 'replication: abcdefghijklmnop\n', { mode: 0o600 });
    await mkdir(caDir, { mode: 0o700 });
  });
  const ossl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  const newKey = (file: string) => ossl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file);

  it('a key others can read: named, with the chmod, and the CA left as it was', async () => {
    const key = join(caDir, 'ca.key');
    newKey(key);
    ossl('req', '-x509', '-new', '-key', key, '-days', '30', '-subj', '/O=dpgc/CN=dpgc main CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-out', join(caDir, 'ca.crt'));
    await chmod(key, 0o644);
    const before = await readdir(caDir);
    const r = await run(['-c', inv, 'verify']);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(new RegExp(`^error: the cluster CA's key ${key} is readable by group or others \\(mode 644\\); dpgc refuses to use it\nRun \`chmod 600 ${key}\`, and treat the CA as exposed`));
    expect(r.stderr).not.toContain('    at ');
    expect(await readdir(caDir)).toEqual(before);
  });

  it('a key that is not the certificate’s', async () => {
    const key = join(caDir, 'ca.key');
    newKey(key);
    await chmod(key, 0o600);
    const r = await run(['-c', inv, 'status']);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr.split('\n')[0]).toBe(`error: the cluster CA's key ${key} does not belong to its certificate ${join(caDir, 'ca.crt')}`);
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

  it('`dpgc init` without a terminal asks nothing: the missing hosts are a usage error naming --host', async () => {
    const r = await run(['init']);
    expectFailure(
      r,
      2,
      'error: dpgc init needs at least 3 hosts, got 0 — cannot ask: not interactive (--yes, CI or no TTY)\n' +
        'Pass --host for each host, e.g. --host db1.example.com --host 10.0.0.12 --host 10.0.0.13.\n',
    );
    expect(existsSync(join(tmp, 'dpgc.yaml'))).toBe(false);
  });
});
