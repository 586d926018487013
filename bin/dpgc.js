#!/usr/bin/env node
// Kept tiny: everything lives in src/cli (compiled to dist/ by `npm ci`/`npm run build`).
import('../dist/src/cli/main.js').then((m) => m.main(process.argv));
