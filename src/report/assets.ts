import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/**
 * The chart library the report inlines: Chart.js and its annotation plugin,
 * their UMD builds read from node_modules (runtime dependencies of dpgc), so
 * the HTML file draws its charts from file:// or a CI artefact store with no
 * network fetch. Their licence headers stay in the minified sources.
 */
export interface ChartAssets {
  chartJs: string;
  annotationPlugin: string;
}

const require = createRequire(import.meta.url);

async function umd(pkg: string, file: string): Promise<string> {
  const text = await readFile(join(dirname(require.resolve(pkg)), file), 'utf8');
  // A source map comment makes a browser with developer tools open fetch a file the report does not carry.
  return text.replace(/\n\/\/# sourceMappingURL=\S+\s*$/, '\n');
}

export async function chartAssets(): Promise<ChartAssets> {
  const [chartJs, annotationPlugin] = await Promise.all([umd('chart.js', 'chart.umd.min.js'), umd('chartjs-plugin-annotation', 'chartjs-plugin-annotation.min.js')]);
  return { chartJs, annotationPlugin };
}
