// Drives the web UI in headless Chromium; scripts/ui-test.sh sets it up
// (a node with a token and a few jobs) and runs it. Environment: BASE (the
// node's URL), TOKEN, OUT (screenshot directory), PROFILE_DIR (a fresh
// Chromium profile), NODE_PATH (where playwright-core is installed).
'use strict';

const assert = require('node:assert/strict');
const path = require('node:path');
const { chromium } = require('playwright-core');

const { BASE, TOKEN, OUT, PROFILE_DIR } = process.env;
const JOB = 'ui-test/hook';
const row = (name) => `tr[data-job="${name}"]`;

function step(name) {
  console.log(`ui-test: ${name}`);
}

/** GET from the API directly, to check what a click changed. */
async function apiGet(p) {
  const response = await fetch(BASE + p, { headers: { Authorization: `Bearer ${TOKEN}` } });
  return { status: response.status, body: await response.json() };
}

(async () => {
  const context = await chromium.launchPersistentContext(PROFILE_DIR, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    viewport: { width: 1360, height: 900 },
  });
  context.setDefaultTimeout(15000);
  const page = context.pages()[0] || await context.newPage();

  // Anything the page throws, and any Content-Security-Policy refusal, fails the test.
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on('dialog', (d) => d.accept());

  try {
    step('the page loads without a token and asks for one when the API answers 401');
    await page.goto(BASE + '/');
    await page.locator('#token-dialog[open]').waitFor();
    assert.match(await page.locator('#token-reason').textContent(), /token/);
    await page.screenshot({ path: path.join(OUT, 'token.png') });
    await page.fill('#token-input', TOKEN);
    await page.click('#token-save');

    step('the jobs page lists the job created through the API');
    const jobRow = page.locator(row(JOB));
    await jobRow.waitFor();
    assert.equal((await jobRow.locator('td.state').textContent()).trim(), 'active');
    assert.match(await jobRow.textContent(), /\*\/5 \* \* \* \* \*/);
    assert.equal(await page.evaluate(() => localStorage.getItem('gnomon.token')), TOKEN);

    step('pause changes its state, in the page and in the cluster');
    await jobRow.locator('[data-action=pause]').click();
    await page.waitForFunction((sel) => document.querySelector(sel + ' td.state')?.textContent.trim() === 'paused', row(JOB));
    assert.equal((await apiGet('/v1/jobs/' + encodeURIComponent(JOB))).body.enabled, false);
    await jobRow.locator('[data-action=resume]').click();
    await page.waitForFunction((sel) => document.querySelector(sel + ' td.state')?.textContent.trim() === 'active', row(JOB));
    assert.equal((await apiGet('/v1/jobs/' + encodeURIComponent(JOB))).body.enabled, true);

    step('a bad schedule in the form shows the API error naming `schedule`');
    await page.click('#new-job');
    await page.fill('#f-name', 'ui-created');
    await page.fill('#f-schedule', '0 61 * * *');
    await page.fill('#f-url', 'http://127.0.0.1:9/created');
    await page.click('#job-form button[type=submit]');
    const formError = page.locator('#job-form-error .error');
    await formError.waitFor();
    const message = await formError.locator('.error-message').textContent();
    assert.match(message, /^schedule: /, message);
    assert.match(message, /61/, message);
    assert.equal(await page.locator('#f-schedule').getAttribute('aria-invalid'), 'true');
    assert.equal((await apiGet('/v1/jobs/ui-created')).status, 404, 'a refused job must not exist');
    await page.screenshot({ path: path.join(OUT, 'jobs-form-error.png'), fullPage: true });

    step('fixing the schedule creates the job');
    await page.fill('#f-schedule', '0 */10 * * * *');
    await page.click('#job-form button[type=submit]');
    await page.locator(row('ui-created')).waitFor();
    assert.equal(await page.locator('#job-form').count(), 0, 'the form closes after saving');
    assert.equal((await apiGet('/v1/jobs/ui-created')).body.schedule, '0 */10 * * * *');

    step('editing keeps the fields the form does not show, and JSON errors come back verbatim');
    await page.locator(row('nightly-report') + ' [data-action=edit]').click();
    assert.equal(await page.locator('#f-schedule').inputValue(), '0 30 2 * * *');
    assert.equal(await page.locator('#f-timezone').inputValue(), 'Europe/Berlin');
    await page.fill('#f-schedule', '0 45 2 * * *');
    await page.click('#job-form button[type=submit]');
    await page.locator('#job-form').waitFor({ state: 'detached' });
    const edited = (await apiGet('/v1/jobs/nightly-report')).body;
    assert.equal(edited.schedule, '0 45 2 * * *');
    assert.deepEqual(edited.labels, { team: '<b>billing</b>' });
    assert.match(edited.target.body, /^<img/);
    await page.locator(row('nightly-report') + ' [data-action=edit]').click();
    await page.click('#job-form button:text("Edit as JSON")');
    await page.fill('#f-json', '{"schedule": "0 45 2 * * *", "target": ');
    await page.click('#job-form button[type=submit]');
    await formError.waitFor();
    assert.equal(await formError.locator('.error-code').textContent(), 'malformed_json');
    await page.click('#job-form button:text("Cancel")');

    step('the job page shows the definition, next fire times and runs with attempts');
    await page.locator(row(JOB) + ' a.job-name').click();
    await page.waitForURL(/#\/jobs\/ui-test%2Fhook$/);
    await page.locator('.next-list li').first().waitFor();
    await page.locator('.toolbar [data-action=trigger]').click();
    assert.match(await page.locator('.flash .notice').textContent(), /^Triggered ui-test\/hook: run /);
    await page.locator('tr.run .tag:text("manual")').waitFor();
    // The target refuses connections: wait for a run with a finished, failed attempt.
    await page.waitForFunction(() => [...document.querySelectorAll('tr.run')]
      .some((r) => /failed/.test(r.textContent)), null, { timeout: 30000 });
    await page.locator('tr.run button.toggle').first().click();
    const attempts = page.locator('tr.attempts-row:not([hidden])').first();
    await attempts.waitFor();
    assert.match(await attempts.textContent(), /node 1/);
    await page.screenshot({ path: path.join(OUT, 'job.png'), fullPage: true });

    step('user text is shown as text, never as markup');
    await page.goto(BASE + '/#/jobs/nightly-report');
    await page.locator('.kv').waitFor();
    assert.match(await page.locator('.kv').textContent(), /<b>billing<\/b>/);
    assert.match(await page.locator('.kv').textContent(), /<img src=x onerror=/);
    assert.equal(await page.evaluate(() => window.__injected), undefined);
    assert.equal(await page.locator('.kv b:text("billing")').count(), 0);

    step('the other pages');
    await page.goto(BASE + '/#/cluster');
    await page.locator('.stats').waitFor();
    assert.match(await page.locator('.stats').textContent(), /Leader\s*node 1/);
    assert.match(await page.locator('tr[data-node="1"]').textContent(), /voter.*reachable/);
    await page.screenshot({ path: path.join(OUT, 'cluster.png') });
    await page.goto(BASE + '/#/dead');
    await page.waitForFunction(() => document.querySelector('tr.run, .empty'));
    await page.goto(BASE + '/#/locks');
    await page.locator('td:text("door")').waitFor();
    await page.goto(BASE + '/#/queues');
    await page.locator('td:text("emails")').waitFor();

    step('the stored token is used after a reload, without asking again');
    await page.goto(BASE + '/#/jobs');
    await page.locator(row('ui-created')).waitFor();
    assert.equal(await page.locator('#token-dialog[open]').count(), 0);
    await page.screenshot({ path: path.join(OUT, 'jobs.png'), fullPage: true });

    assert.deepEqual(problems, []);
  } catch (e) {
    await page.screenshot({ path: path.join(OUT, 'failure.png'), fullPage: true }).catch(() => {});
    console.error(e);
    if (problems.length) console.error(problems.join('\n'));
    process.exitCode = 1;
  } finally {
    await context.close();
  }
})();
