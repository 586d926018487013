import { pathToFileURL } from 'node:url';
import { chromium, type Page } from 'playwright-core';

/**
 * A real browser for what dpgc writes for people to read: Debian's Chromium
 * (scripts/install-lab-deps.sh installs it), driven by playwright-core, which
 * downloads no browser of its own. Everything a page asks for, every console
 * error and every uncaught exception is recorded, so a test can assert that
 * the page is self-contained and clean.
 */
export const CHROMIUM = process.env['DPGC_CHROMIUM'] ?? '/usr/bin/chromium';

export interface OpenedPage {
  page: Page;
  /** Every URL the page requested (the document itself included). */
  requests: string[];
  failedRequests: string[];
  consoleErrors: string[];
}

export interface Browser {
  open(file: string): Promise<OpenedPage>;
  close(): Promise<void>;
}

export async function launchBrowser(viewport = { width: 1200, height: 900 }): Promise<Browser> {
  // As root, Chromium refuses to start with its sandbox.
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu'] });
  return {
    async open(file) {
      const page = await browser.newPage({ viewport });
      const opened: OpenedPage = { page, requests: [], failedRequests: [], consoleErrors: [] };
      page.on('request', (r) => opened.requests.push(r.url()));
      page.on('requestfailed', (r) => opened.failedRequests.push(`${r.url()}: ${r.failure()?.errorText ?? '?'}`));
      page.on('console', (m) => {
        if (m.type() === 'error') opened.consoleErrors.push(m.text());
      });
      page.on('pageerror', (e) => opened.consoleErrors.push(`uncaught: ${e.message}`));
      await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
      return opened;
    },
    close: () => browser.close(),
  };
}
