// Drives the dashboard in the machine's Chromium with Playwright, one step per run:
//   node dashboard.mjs <setup.json> <step>
// setup.json: { base, chromium, out, nodeId, tree, accounts: { <role>: { name, token } },
//               signature? }
// Prints one JSON line with what the step saw; the Rust test decides whether that is right
// and checks the effects (over DNS, through the API). Screenshots go to `out`.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [setupPath, step] = process.argv.slice(2);
const setup = JSON.parse(readFileSync(setupPath, 'utf8'));

const browser = await chromium.launch({
  executablePath: setup.chromium,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

async function as(role) {
  const { name, token } = setup.accounts[role];
  return browser.newContext({
    baseURL: setup.base,
    httpCredentials: { username: name, password: token },
    acceptDownloads: true,
  });
}

async function shot(page, file) {
  const path = join(setup.out, file);
  await page.screenshot({ path, fullPage: true });
  return path;
}

const nodePage = `/dashboard/nodes/${setup.nodeId}`;
const treePage = `/dashboard/trees/${setup.tree}`;
const result = {};
let current = null; // the page a failure is reported with
// A page that runs a script would break the dashboard's promise: count any errors.
const scriptErrors = [];

try {
  if (step === 'operator-maintenance') {
    const context = await as('operator');
    const page = await context.newPage();
    current = page;
    page.on('pageerror', (e) => scriptErrors.push(String(e)));
    await page.goto('/dashboard');
    result.who = (await page.locator('#who').textContent()).trim();
    await page.click(`a[href="${nodePage}"]`);
    await page.fill('#start-maintenance input[name="reason"]', 'kernel upgrade');
    const [posted] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST'),
      page.click('#start-maintenance button[type="submit"]'),
    ]);
    result.postStatus = posted.status();
    await page.waitForURL(`**${nodePage}`);
    await page.waitForLoadState();
    result.maintenance = (await page.locator('#maintenance').textContent()).trim();
    result.endButton = await page.locator('#end-maintenance button').count();
    result.screenshot = await shot(page, 'operator-maintenance.png');
  } else if (step === 'viewer') {
    const context = await as('viewer');
    const page = await context.newPage();
    result.forms = {};
    for (const path of ['/dashboard', nodePage, treePage, '/dashboard/rollouts']) {
      await page.goto(path);
      result.forms[path] = await page.locator('form').count();
    }
    await page.goto(nodePage);
    result.screenshot = await shot(page, 'viewer-node.png');
    // A forged post with the viewer's login: what a crafted page could make the browser send.
    const forged = await context.request.post(`${nodePage}/maintenance/end`, {
      form: { csrf: 'forged' },
      headers: { origin: setup.base },
    });
    result.forgedStatus = forged.status();
  } else if (step === 'operator-no-csrf') {
    const context = await as('operator');
    const response = await context.request.post(`${nodePage}/maintenance/end`, {
      form: { reason: 'none' },
      headers: { origin: setup.base },
    });
    result.status = response.status();
    result.body = await response.text();
  } else if (step === 'keyholder-download') {
    const context = await as('keyholder');
    const page = await context.newPage();
    await page.goto(treePage);
    result.pending = (await page.locator('#pending').textContent()).trim();
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.click('#download-request'),
    ]);
    result.suggested = download.suggestedFilename();
    result.file = join(setup.out, result.suggested);
    await download.saveAs(result.file);
  } else if (step === 'keyholder-upload') {
    const context = await as('keyholder');
    const page = await context.newPage();
    current = page;
    page.on('pageerror', (e) => scriptErrors.push(String(e)));
    await page.goto(treePage);
    await page.setInputFiles('#upload-signature input[type="file"]', setup.signature);
    const [posted] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST'),
      page.click('#upload-signature button[type="submit"]'),
    ]);
    result.postStatus = posted.status();
    await page.waitForLoadState();
    result.title = (await page.locator('h1').textContent()).trim();
    result.message = (await page.locator('#message').textContent()).trim();
    result.screenshot = await shot(page, 'keyholder-signed.png');
  } else {
    throw new Error(`unknown step ${step}`);
  }
  result.scriptErrors = scriptErrors;
  console.log(JSON.stringify(result));
} catch (error) {
  if (current) {
    console.error(`at ${current.url()}:\n${await current.content()}`);
  }
  throw error;
} finally {
  await browser.close();
}
