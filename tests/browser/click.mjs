// Opens a URL in headless Chromium as a person would and prints one JSON line about the page it
// ends on: {"status", "title", "text", "clicked", "url"}. tests/oneclick.rs runs it.
//
//   node click.mjs URL [--click] [--set NAME=VALUE]...
//
// --set changes a form field (hidden ones too) before the click, as a tampering user could;
// --click presses the page's form button and waits for the page it leads to (without a form
// there is nothing to press: "clicked" is false and the first page is reported).
//
// The browser is Debian's (`apt-get install chromium`; PATCHWATCH_TEST_CHROMIUM overrides the
// path), never a download; each run gets a fresh profile, removed afterwards.
// Exit codes: 0 done, 2 usage, 3 the browser or playwright-core is missing, 4 timed out, 1 other.
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const TIMEOUT_MS = 20_000;
const executablePath = process.env.PATCHWATCH_TEST_CHROMIUM || '/usr/bin/chromium';

const args = process.argv.slice(2);
const url = args.shift();
let click = false;
const sets = [];
while (args.length) {
  const a = args.shift();
  if (a === '--click') click = true;
  else if (a === '--set' && args.length && args[0].includes('=')) {
    const s = args.shift();
    sets.push([s.slice(0, s.indexOf('=')), s.slice(s.indexOf('=') + 1)]);
  } else {
    console.error(`unknown argument ${a}`);
    process.exit(2);
  }
}
if (!url) {
  console.error('usage: node click.mjs URL [--click] [--set NAME=VALUE]...');
  process.exit(2);
}
if (!existsSync(executablePath)) {
  console.error(`no Chromium at ${executablePath}: apt-get install -y chromium (or set PATCHWATCH_TEST_CHROMIUM)`);
  process.exit(3);
}
let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  console.error(`cannot load playwright-core (${e.message}): (cd tests/browser && npm ci)`);
  process.exit(3);
}

// The whole run is bounded, whatever hangs.
setTimeout(() => {
  console.error(`timed out after ${3 * TIMEOUT_MS} ms`);
  process.exit(4);
}, 3 * TIMEOUT_MS).unref();

const profile = mkdtempSync(join(tmpdir(), 'patchwatch-chromium-'));
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    timeout: TIMEOUT_MS,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
} catch (e) {
  rmSync(profile, { recursive: true, force: true });
  console.error(`cannot start Chromium at ${executablePath}: ${e.message}`);
  process.exit(3);
}
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(TIMEOUT_MS);
  let response = await page.goto(url, { waitUntil: 'load' });
  for (const [name, value] of sets) {
    const found = await page.evaluate(
      ([n, v]) => {
        const field = document.querySelector(`form [name="${CSS.escape(n)}"]`);
        if (field) field.value = v;
        return Boolean(field);
      },
      [name, value],
    );
    if (!found) throw new Error(`the page has no form field ${name}`);
  }
  let clicked = false;
  const button = page.locator('form button[type=submit]');
  if (click && (await button.count()) === 1) {
    const [posted] = await Promise.all([
      page.waitForResponse((r) => r.request().isNavigationRequest() && r.request().method() === 'POST'),
      button.click(),
    ]);
    await page.waitForLoadState('load');
    response = posted;
    clicked = true;
  }
  const title = await page.title();
  const text = await page.evaluate(() => document.body.innerText);
  console.log(JSON.stringify({ status: response ? response.status() : 0, title, text, clicked, url: page.url() }));
} catch (e) {
  console.error(`browser run failed: ${e.message}`);
  process.exitCode = 1;
} finally {
  await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
