// Sessions you can see and end (issue #32, item 3), in a real browser: two browser contexts
// of one account; the first's settings page lists both (itself marked), ends the second with
// "End", and the second is logged out at its next navigation. Then "End all other sessions".
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launch, hydrated, uniqueUser, signup, ARTIFACTS } from './helpers.mjs';

let server;
before(async () => { server = await startServer({ hosting: false }); });
after(async () => { await server?.stop(); });

/** Logs `u` in on `page` through the login form. */
async function logIn(page, u) {
  await page.goto(`${server.base}/login`);
  await hydrated(page);
  await page.fill('#f-login', u.username);
  await page.fill('#f-password', u.password);
  await Promise.all([page.waitForURL(/\/dashboard$/), page.click('[data-testid=login-submit]')]);
}

async function openSessions(page) {
  await page.goto(`${server.base}/settings`);
  await hydrated(page);
  await page.waitForSelector('[data-testid=session-row]');
}

test('a second browser is listed, ended from the first one\'s settings page, and logged out', async () => {
  const { browser, page, errors } = await launch();
  try {
    const u = uniqueUser('sess');
    await signup(page, server.base, u);
    const other = await browser.newContext();
    const second = await other.newPage();
    await logIn(second, u);

    await openSessions(page);
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=session-row]').length === 2);
    assert.equal(await page.locator('[data-testid=session-row][data-current=true]').count(), 1, 'this one is marked');
    assert.equal(await page.locator('[data-testid=session-row][data-current=true] button').count(), 0, 'no End on this one');
    const row = page.locator('[data-testid=session-row][data-current=false]');
    assert.match(await row.textContent(), /from 127\.0\.0\.1/);
    assert.match(await row.textContent(), /last seen/);
    await page.screenshot({ path: `${ARTIFACTS}/settings-sessions.png`, fullPage: true });

    await row.getByRole('button', { name: 'End' }).click();
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=session-row]').length === 1);
    assert.equal(await page.locator('[data-testid=session-row][data-current=true]').count(), 1);

    // The ended browser: its next navigation finds itself logged out.
    await second.goto(`${server.base}/dashboard`);
    await second.waitForURL(/\/login$/);

    // The first goes on.
    await page.goto(`${server.base}/dashboard`);
    await hydrated(page);
    assert.ok(page.url().endsWith('/dashboard'));

    // "End all other sessions": two more browsers, both logged out.
    const third = await (await browser.newContext()).newPage();
    await logIn(second, u);
    await logIn(third, u);
    await openSessions(page);
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=session-row]').length === 3);
    await page.click('[data-testid=end-other-sessions-form] button[type=submit]');
    await page.waitForSelector('[data-testid=sessions-ended]');
    assert.match(await page.textContent('[data-testid=sessions-ended]'), /^2 /);
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=session-row]').length === 1);
    for (const p of [second, third]) {
      await p.goto(`${server.base}/settings`);
      await p.waitForURL(/\/login/);
    }
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
