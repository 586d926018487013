import { z } from 'zod';
import { inventorySchema } from '../../config/schema.js';

/**
 * The JSON Schema for editors, generated from the same zod schema that
 * validates, so the two cannot disagree. `io: 'input'`: fields with defaults
 * are optional, as they are in the file.
 */
export function inventoryJsonSchema(): Record<string, unknown> {
  const { $schema, ...rest } = z.toJSONSchema(inventorySchema, { io: 'input' }) as Record<string, unknown>;
  return { $schema, $id: 'https://dpgc.dev/inventory.schema.json', title: 'dpgc inventory', ...rest };
}

export async function schemaCommand(): Promise<void> {
  process.stdout.write(`${JSON.stringify(inventoryJsonSchema(), null, 2)}\n`);
}
