import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { generateTypes } from '../schemas/codegen.ts';
import { latestSchemas } from '../schemas/latest.ts';

const out = fileURLToPath(new URL('../schemas/generated/types.ts', import.meta.url));
writeFileSync(out, generateTypes(latestSchemas()));
console.log(`wrote ${out}`);
