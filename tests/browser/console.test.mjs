// The admin console in headless Chromium, against tandem and the Pipedrive simulator started by
// the `console-fixture` binary (everything on 127.0.0.1):
// log in → connect through the simulator's OAuth consent → "Connected" → map a field →
// the simulator revokes the tokens → "Resync now" → "Token expired" with a Reconnect button
// that works → the sync log shows the 401 → the duplicate report shows three same-email persons,
// a merge is clicked and the report shows the result → a contact is pushed → the overview, the
// connection's charts and "Find a contact" (its `<script>` name shown as text) render →
// "Why isn't this record syncing?" answers linked, then not_visible for a hidden person →
// Salesforce is connected from its card next to Pipedrive and its initial sync links a Lead →
// the record check finds the Lead linked → its tokens are revoked: Token expired, Reconnect.
// Screenshots go to target/artifacts/browser/.
//
// Usage: node console.test.mjs PATH/TO/console-fixture
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const artifacts = resolve(here, '../../target/artifacts/browser');
mkdirSync(artifacts, { recursive: true });
const fixturePath = process.argv[2];
if (!fixturePath) throw new Error('usage: node console.test.mjs PATH/TO/console-fixture');

const fixture = spawn(fixturePath, [], { stdio: ['pipe', 'pipe', 'inherit'] });
const lines = createInterface({ input: fixture.stdout });
const waiting = [];
lines.on('line', (line) => { const next = waiting.shift(); if (next) next(line); });
const nextLine = () => new Promise((resolveLine, reject) => {
  waiting.push(resolveLine);
  fixture.once('exit', (code) => reject(new Error(`fixture exited with ${code}`)));
});
const command = async (name) => {
  const answer = nextLine();
  fixture.stdin.write(`${name}\n`);
  const line = await answer;
  if (line !== `ok ${name}`) throw new Error(`fixture answered ${line}`);
};

const { tandem, admin_token: adminToken } = JSON.parse(await nextLine());
const profile = mkdtempSync(join(tmpdir(), 'tandem-chromium-'));
// A fresh --user-data-dir (Playwright passes it from the first argument).
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let step = 0;
const page = browser.pages()[0] ?? await browser.newPage();
const shot = async (name) => {
  step += 1;
  await page.screenshot({ path: join(artifacts, `${String(step).padStart(2, '0')}-${name}.png`), fullPage: true });
};
const expectText = async (selector, text) => {
  const locator = page.locator(selector);
  await locator.filter({ hasText: text }).first().waitFor({ timeout: 10000 });
};

let failed = false;
try {
  // Log in.
  await page.goto(`${tandem}/admin`);
  await page.waitForURL(/\/admin\/login$/);
  await page.fill('input[name=token]', adminToken);
  await page.click('button:has-text("Log in")');
  await page.waitForURL(/\/admin$/);
  await shot('logged-in');

  // Connect through the simulator's OAuth consent.
  await page.click('#connect');
  await page.waitForURL(/\/admin$/);
  await expectText('#state', 'Connected');
  await shot('connected');

  // Map a field.
  await page.click('a:has-text("Field mapping")');
  await page.fill('input[name=local_field]', 'utm_campaign');
  await page.selectOption('select[name=remote_field]', { label: 'Campaign (varchar, custom)' });
  await page.selectOption('select[name=direction]', 'outbound');
  await page.click('button:has-text("Save mapping")');
  await expectText('.notice', 'Mapping saved');
  await expectText('#mappings tr[data-local=utm_campaign]', 'Campaign');
  await shot('field-mapped');

  // Break the token in the simulator; the next call meets a 401 and the refresh fails.
  await command('revoke');
  await page.click('a:has-text("Connection")');
  await page.click('button:has-text("Resync now")');
  await expectText('#error-detail', '401');
  await shot('resync-refused');
  await page.goto(`${tandem}/admin`);
  await expectText('#state', 'Token expired');
  await page.locator('#reconnect').waitFor();
  await shot('token-expired');

  // Reconnect works.
  await page.click('#reconnect');
  await page.waitForURL(/\/admin$/);
  await expectText('#state', 'Connected');
  await shot('reconnected');

  // The sync log shows the 401.
  await page.click('a:has-text("Sync log")');
  await expectText('#log tr[data-kind=token_expired] td.status', '401');
  await expectText('#log tr[data-kind=token_expired] td.remote-error', 'unauthorized access');
  await shot('sync-log-401');

  // The duplicate report: three persons share an e-mail; merge two of them through Pipedrive.
  await command('duplicates');
  await page.click('a:has-text("Duplicates")');
  const group = page.locator('#duplicates tr[data-group="twin@example.com"]');
  await group.waitFor({ timeout: 10000 });
  if ((await group.locator('li[data-person]').count()) !== 3) throw new Error('expected a group of three');
  await shot('duplicates');
  await group.locator('form.merge button').click();
  await expectText('.notice', 'was merged into');
  const after = page.locator('#duplicates tr[data-group="twin@example.com"]');
  await after.waitFor();
  if ((await after.locator('li[data-person]').count()) !== 2) throw new Error('expected two records after the merge');
  await shot('duplicates-merged');

  // The overview, the connection's charts and the contact search, after some traffic.
  await command('traffic');
  await page.click('header a:has-text("Overview")');
  await expectText('#overview', 'Connected');
  await shot('overview');
  await page.click('#overview a:has-text("hour")');
  await page.locator('#chart-writes polyline').first().waitFor({ timeout: 10000 });
  await shot('charts');
  await page.click('header a:has-text("Find a contact")');
  await page.fill('input[name=q]', 'xss@example.com');
  await page.click('button:has-text("Find")');
  await expectText('#contacts td.name', '<script>alert(1)</script>');
  await shot('contact-search');
  await page.click('#contacts a');
  await expectText('#fields', '<script>alert(1)</script>');
  await page.locator('button:has-text("Resync this contact")').waitFor();
  await shot('contact');

  // "Why isn't this record syncing?": the pushed contact is linked; a person that Pipedrive's
  // visibility groups hide from the connecting user is not visible, with the guide's fix.
  await page.click('header a:has-text("Why isn\'t it syncing?")');
  await page.fill('#record-check-form input[name=email]', 'xss@example.com');
  await page.click('#record-check-form button:has-text("Check")');
  await expectText('#record-check-code', 'linked');
  await shot('record-check-linked');
  await command('hidden');
  await page.fill('#record-check-form input[name=email]', 'hidden@example.com');
  await page.click('#record-check-form button:has-text("Check")');
  await expectText('#record-check-code', 'not_visible');
  await expectText('#record-check-fix', 'visibility');
  await shot('record-check-not-visible');

  // Salesforce next to Pipedrive: the Salesforce card's Connect goes through the simulator's
  // consent and back; its card shows the org, the instance URL and Salesforce's actions only
  // (the mirror of every object is Pipedrive's), and its initial sync links the org's Lead.
  await page.click('header a:has-text("Connection")');
  await page.waitForURL(/\/admin$/);
  await page.locator('#connect-salesforce').waitFor();
  await Promise.all([
    page.waitForURL(/\/connections\/salesforce\/callback\?/),
    page.click('#connect-salesforce'),
  ]);
  await page.waitForURL(/\/admin$/);
  const salesforce = page.locator('section.card[data-crm=salesforce]');
  await salesforce.locator('.state').filter({ hasText: 'Connected' }).waitFor({ timeout: 10000 });
  await salesforce.locator('th', { hasText: 'Salesforce org' }).waitFor();
  await salesforce.locator('th', { hasText: 'Instance URL' }).waitFor();
  if ((await salesforce.locator('button:has-text("Mirror every Pipedrive object")').count()) !== 0) {
    throw new Error('the Salesforce card offers the Pipedrive mirror');
  }
  const pipedrive = page.locator('section.card[data-crm=pipedrive]');
  if ((await pipedrive.locator('button:has-text("Mirror every Pipedrive object")').count()) !== 1) {
    throw new Error('the Pipedrive card lost its mirror switch');
  }
  await shot('salesforce-connected');
  await salesforce.locator('button:has-text("Run initial sync")').click();
  // The sync runs in the background: reload the card until it counts the Lead (bounded).
  let linked = '';
  for (let attempt = 0; attempt < 40 && linked !== '1'; attempt += 1) {
    await page.goto(`${tandem}/admin`);
    linked = (await page.locator('section.card[data-crm=salesforce] tr:has(th:text-is("Linked persons")) td').textContent()).trim();
    if (linked !== '1') await page.waitForTimeout(250);
  }
  if (linked !== '1') throw new Error(`the Salesforce card shows ${linked} linked persons, not 1`);
  await shot('salesforce-synced');

  // The missing-record tool on the Salesforce connection: the Lead is linked.
  await page.click('header a:has-text("Why isn\'t it syncing?")');
  const salesforceOption = await page.locator('#record-check-form option', { hasText: '(salesforce)' }).getAttribute('value');
  await page.selectOption('#record-check-form select[name=connection]', salesforceOption);
  await page.fill('#record-check-form input[name=email]', 'lead@example.com');
  await page.click('#record-check-form button:has-text("Check")');
  await expectText('#record-check-code', 'linked');
  await shot('salesforce-record-check');

  // An admin revokes the connected app: the next sync meets it, the card says Token expired
  // with a Reconnect that works.
  await command('salesforce-revoke');
  await page.click('header a:has-text("Connection")');
  await page.waitForURL(/\/admin$/);
  await page.locator('section.card[data-crm=salesforce] button:has-text("Resync now")').click();
  await page.goto(`${tandem}/admin`);
  const expired = page.locator('section.card[data-crm=salesforce]');
  await expired.locator('.state').filter({ hasText: 'Token expired' }).waitFor({ timeout: 10000 });
  await shot('salesforce-token-expired');
  await Promise.all([
    page.waitForURL(/\/connections\/salesforce\/callback\?/),
    expired.locator('#reconnect').click(),
  ]);
  await page.waitForURL(/\/admin$/);
  await page.locator('section.card[data-crm=salesforce] .state').filter({ hasText: 'Connected' }).waitFor({ timeout: 10000 });
  if ((await page.locator('section.card[data-crm=salesforce]').count()) !== 1) {
    throw new Error('reconnecting made a second Salesforce connection');
  }
  await shot('salesforce-reconnected');
  console.log(`browser test passed; screenshots in ${artifacts}`);
} catch (error) {
  failed = true;
  console.error(`browser test failed: ${error.stack || error}`);
  await shot('failure').catch(() => {});
} finally {
  await browser.close();
  fixture.stdin.end('quit\n');
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
