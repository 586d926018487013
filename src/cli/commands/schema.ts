import { z } from 'zod';
import { inventorySchema } from '../../config/schema.js';

/** The JSON Schema for editors, generated from the same zod schema that validates. */
export function inventoryJsonSchema(): unknown {
  return { $id: 'https://dpgc.dev/inventory.schema.json', title: 'dpgc inventory', ...z.toJSONSchema(inventorySchema, { io: 'input' }) };
}

export async function schemaCommand(): Promise<void> {
  process.stdout.write(`${JSON.stringify(inventoryJsonSchema(), null, 2)}\n`);
}
