// Debian's chromium under playwright-core (no browser download), with the
// flags every test here uses and a fresh profile per run; JSON-lines
// reporting to the Rust test that runs the script, and its go-ahead on stdin.

import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export async function launch() {
  const profile = mkdtempSync(join(tmpdir(), 'tally-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    acceptDownloads: true,
  });
  const close = async () => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  };
  return { context, close };
}

export function report(value) {
  process.stdout.write(JSON.stringify(value) + '\n');
}

// Read only while waiting: an open stdin would keep node running after the script.
export async function waitForLine() {
  report({ waiting: true });
  const lines = createInterface({ input: process.stdin });
  await lines[Symbol.asyncIterator]().next();
  lines.close();
  process.stdin.pause();
}

export function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
}
