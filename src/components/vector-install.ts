import type { Inventory } from '../config/schema.js';
import { HostError } from '../errors.js';
import type { Node } from '../hosts/pool.js';
import type { Host } from '../hosts/types.js';
import { templateText } from '../templates.js';
import { aptCandidate, installPackages } from './packages.js';
import { extensionBuildPackages, pgDirs } from './postgres.js';
import { ENGINES, extensionName, type VectorEngine } from './vector.js';

/**
 * Puts the vector extension's files into a host's PostgreSQL. Engine names
 * come from vector.ts only. Order of preference: already installed (control
 * file present), the distribution package, a build from Debian's source
 * package (pgvector on bookworm), or the pinned Docker image (ruvector).
 */
export function controlFile(engine: VectorEngine, pgMajor: number): string {
  return `${pgDirs(pgMajor).share}/extension/${extensionName(engine)}.control`;
}

/** `default_version = '0.8.0'` from a control file (pure). */
export function controlVersion(control: string): string | undefined {
  return /^\s*default_version\s*=\s*'([^']+)'/m.exec(control)?.[1];
}

export async function installedVersion(host: Host, engine: VectorEngine, pgMajor: number): Promise<string | undefined> {
  const c = await host.readFile(controlFile(engine, pgMajor));
  return c === undefined ? undefined : (controlVersion(c) ?? 'unknown version');
}

export async function installVectorExtension(node: Pick<Node, 'host'>, inv: Pick<Inventory, 'postgres'>): Promise<{ changed: boolean; note: string }> {
  const { host } = node;
  const { version: v, vector: engine } = inv.postgres;
  const have = await installedVersion(host, engine, v);
  if (have) return { changed: false, note: `${ENGINES[engine].label} ${have}` };
  if (engine === 'pgvector') await installPgvector(host, v);
  else await installRuvectorFromImage(host, v, inv.postgres.ruvector_image);
  const now = host.dryRun ? 'to be installed' : await installedVersion(host, engine, v);
  if (!now) throw new HostError(`${host.name}: ${ENGINES[engine].label} was installed but ${controlFile(engine, v)} is still missing`);
  return { changed: true, note: `${ENGINES[engine].label} ${now}` };
}

async function installPgvector(host: Host, v: number): Promise<void> {
  const pkg = ENGINES.pgvector.aptPackage(v);
  if (await aptCandidate(host, pkg)) {
    await installPackages(host, [pkg]);
    return;
  }
  // No binary package for this suite (Debian bookworm): build Debian's source package, as scripts/install-lab-deps.sh does.
  await installPackages(host, extensionBuildPackages(v));
  // Why bash: the build is a script file of this repository (templates/scripts), sent on stdin; its inputs are "$1".."$3", never spliced in.
  await host.exec(['bash', '-s', '--', `${pgDirs(v).bin}/pg_config`, ENGINES.pgvector.debianSource, 'trixie'], {
    input: templateText('scripts/build-extension-from-debian-source.sh'),
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', DEBIAN_FRONTEND: 'noninteractive' },
    timeoutMs: 1_200_000,
  });
}

/**
 * Copies the extension's library and SQL files out of the pinned image. The
 * image is built on one PostgreSQL major, and a library only loads into the
 * major it was built for.
 */
async function installRuvectorFromImage(host: Host, v: number, image: string): Promise<void> {
  const { imagePgMajor, extension } = ENGINES.ruvector;
  const docker = await host.exec(['docker', 'info', '--format', '{{.ServerVersion}}'], { mutates: false, allowFailure: true });
  if (docker.exitCode !== 0) {
    throw new HostError(`${host.name}: ${ENGINES.ruvector.label} needs Docker on ${host.name} (to copy it out of ${image}), or the extension already installed`, {
      hint: `Install Docker on ${host.name}, or install the extension files for PostgreSQL ${v} by hand; or set postgres.vector: pgvector in the inventory.`,
    });
  }
  if (v !== imagePgMajor) {
    throw new HostError(`${host.name}: ${image} carries ${ENGINES.ruvector.label} built for PostgreSQL ${imagePgMajor}, and the inventory asks for PostgreSQL ${v}`, {
      hint: `Set postgres.version: ${imagePgMajor} in the inventory (before sprint 0 creates the data directory).`,
    });
  }
  const dirs = pgDirs(v);
  const script = [
    'set -eu',
    'docker pull -q "$1" >/dev/null',
    'c=$(docker create "$1")',
    'trap \'docker rm -f "$c" >/dev/null\' EXIT',
    't=$(mktemp -d)',
    'docker cp "$c:$3/." "$t/lib"',
    'docker cp "$c:$4/." "$t/ext"',
    'cp "$t/lib/$2".so* "$3/"',
    'cp "$t/ext/$2".control "$t/ext/$2"--*.sql "$4/"',
    // The only recursive removal on a host outside the lab: mktemp's own fresh directory.
    'rm -rf "$t"',
  ].join('\n');
  // Why a shell: a container to clean up whatever happens (trap). Image, extension and directories are "$1".."$4", never spliced in.
  await host.exec(['sh', '-c', script, 'sh', image, extension, dirs.lib, `${dirs.share}/extension`], { timeoutMs: 1_200_000 });
}
