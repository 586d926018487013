import { parseInventory } from '../../src/config/load.js';
import type { Inventory } from '../../src/config/schema.js';
import { labInventoryYaml } from '../../src/lab/inventory.js';

/** The lab inventory on 127.0.30.x under /lab, parsed (for pure render tests), plus extra YAML. */
export function labInv(over = ''): Inventory {
  const r = parseInventory(labInventoryYaml({ dir: '/lab', subnet: '127.0.30' }) + over, '/lab/dpgc.yaml');
  if (!r.inventory) throw new Error(JSON.stringify(r.issues));
  return r.inventory;
}
