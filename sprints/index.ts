import type { Sprint } from './types.js';

/** Lazy, so `dpgc sprint 0` never loads sprint 3's dependencies. */
const LOADERS: Record<number, () => Promise<Sprint>> = {
  0: async () => (await import('./sprint-0.js')).sprint0,
  1: async () => (await import('./sprint-1.js')).sprint1,
  2: async () => (await import('./sprint-2.js')).sprint2,
  3: async () => (await import('./sprint-3.js')).sprint3,
  4: async () => (await import('./sprint-4.js')).sprint4,
  5: async () => (await import('./sprint-5.js')).sprint5,
};

export function implementedSprints(): number[] {
  return Object.keys(LOADERS).map(Number).sort((a, b) => a - b);
}

export async function loadSprint(id: number): Promise<Sprint | undefined> {
  const l = LOADERS[id];
  return l ? l() : undefined;
}
