// Accounts in a real browser: sign up, log out, log in, field errors (also while typing),
// dark mode that sticks, and the same forms with JavaScript disabled.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launch, hydrated, uniqueUser, signup, assertFits, PHONE, ARTIFACTS } from './helpers.mjs';

// A fixed public key with a long comment (a key's comment is what a fingerprint line may show).
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl someone@a-rather-long-laptop-name.example.com';

let server;
// The first account administers this instance (--first-user-admin): made here, before any test.
const root = uniqueUser('root');
before(async () => {
  server = await startServer({ hosting: false });
  const r = await fetch(`${server.base}/api/v1/auth/register`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: root.email, username: root.username, password: root.password }),
  });
  assert.equal(r.status, 201);
});
after(async () => { await server?.stop(); });

test('sign up, log out, log back in; wrong password and taken email get field errors', async () => {
  const { browser, page, errors } = await launch();
  try {
    const u = uniqueUser('ann');
    await signup(page, server.base, u);
    await hydrated(page);
    assert.equal(await page.textContent('[data-testid=username]'), u.username);
    await page.screenshot({ path: `${ARTIFACTS}/dashboard-empty.png` });

    await Promise.all([page.waitForURL(/\/login$/), page.click('[data-testid=logout]')]);
    // The old session is gone on the server: the dashboard sends us to log in.
    await page.goto(`${server.base}/dashboard`);
    await page.waitForURL(/\/login$/);

    await hydrated(page);
    await page.fill('#f-login', u.username);
    await page.fill('#f-password', 'not the password');
    await page.click('[data-testid=login-submit]');
    await page.waitForSelector('[data-field-error=login]:not(:empty)');
    assert.match(await page.textContent('[data-field-error=login]'), /wrong/i);

    await page.fill('#f-login', u.email);
    await page.fill('#f-password', u.password);
    await Promise.all([page.waitForURL(/\/dashboard$/), page.click('[data-testid=login-submit]')]);

    // A second account with the same email: told while typing, and refused on submit.
    await Promise.all([page.waitForURL(/\/login$/), page.click('[data-testid=logout]')]);
    await page.goto(`${server.base}/signup`);
    await hydrated(page);
    await page.fill('#f-email', u.email);
    await page.waitForSelector('[data-field-error=email]:not(:empty)');
    assert.match(await page.textContent('[data-field-error=email]'), /already exists/);
    await page.fill('#f-username', uniqueUser('bob').username);
    await page.fill('#f-password', 'short');
    await page.click('[data-testid=signup-submit]');
    await page.waitForSelector('[data-field-error=password]:not(:empty)');
    assert.match(await page.textContent('[data-field-error=password]'), /at least 8/);
    await page.screenshot({ path: `${ARTIFACTS}/signup-errors.png` });
    assert.deepEqual(errors, [], 'no console errors');
  } finally {
    await browser.close();
  }
});

test('dark mode is remembered across reloads', async () => {
  const { browser, page } = await launch();
  try {
    await page.goto(`${server.base}/`);
    await hydrated(page);
    const dark0 = await page.evaluate(() => document.documentElement.classList.contains('dark'));
    await page.click('[data-testid=theme-toggle]');
    const dark1 = await page.evaluate(() => document.documentElement.classList.contains('dark'));
    assert.notEqual(dark0, dark1);
    await page.reload();
    const dark2 = await page.evaluate(() => document.documentElement.classList.contains('dark'));
    assert.equal(dark2, dark1, 'the choice survives a reload');
    await page.screenshot({ path: `${ARTIFACTS}/home-${dark2 ? 'dark' : 'light'}.png` });
  } finally {
    await browser.close();
  }
});

test('without a saved choice the theme follows the system setting', async () => {
  for (const colorScheme of ['dark', 'light']) {
    const { browser, page } = await launch({ javaScriptEnabled: true, colorScheme });
    try {
      await page.goto(`${server.base}/login`);
      // The inline script in <head> decided this, before the page painted.
      const dark = await page.evaluate(() => document.documentElement.classList.contains('dark'));
      assert.equal(dark, colorScheme === 'dark', `system says ${colorScheme}`);
    } finally {
      await browser.close();
    }
  }
});

test('sign-up and log-in work with JavaScript disabled', async () => {
  const { browser, page } = await launch({ javaScriptEnabled: false });
  try {
    const u = uniqueUser('nojs');
    await signup(page, server.base, u);
    assert.equal(await page.textContent('[data-testid=username]'), u.username);
    await Promise.all([page.waitForURL(/\/login/), page.click('[data-testid=logout]')]);
    await page.goto(`${server.base}/login`);
    await page.fill('#f-login', u.username);
    await page.fill('#f-password', 'wrong password!');
    await page.click('[data-testid=login-submit]');
    await page.waitForLoadState();
    assert.match(await page.textContent('body'), /Wrong email\/username or password/);
    await page.screenshot({ path: `${ARTIFACTS}/nojs-login-error.png` });
    await page.fill('#f-login', u.username);
    await page.fill('#f-password', u.password);
    await Promise.all([page.waitForURL(/\/dashboard$/), page.click('[data-testid=login-submit]')]);
    // A taken username without JS: the error comes back with the page.
    await Promise.all([page.waitForURL(/\/login/), page.click('[data-testid=logout]')]);
    await page.goto(`${server.base}/signup`);
    await page.fill('#f-email', `other-${u.email}`);
    await page.fill('#f-username', u.username);
    await page.fill('#f-password', u.password);
    await page.click('[data-testid=signup-submit]');
    await page.waitForLoadState();
    assert.match(await page.textContent('body'), /username is taken/);
  } finally {
    await browser.close();
  }
});

async function logIn(page, base, login, password) {
  await page.goto(`${base}/login`);
  await hydrated(page);
  await page.fill('#f-login', login);
  await page.fill('#f-password', password);
  await page.click('[data-testid=login-submit]');
}

test('on a phone every page fits; an administrator disables and enables an account, which sees it in its activity', async () => {
  const { browser, page, errors } = await launch({ viewport: PHONE });
  const admin = await launch({ viewport: PHONE });
  try {
    const u = uniqueUser('pat');
    await signup(page, server.base, u);
    await hydrated(page);
    await page.goto(`${server.base}/settings`);
    await hydrated(page);
    await page.fill('#f-name', 'laptop');
    await page.fill('#f-public_key', KEY);
    await page.click('[data-testid=add-key-submit]');
    await page.waitForSelector('[data-testid=fingerprint]');
    await assertFits(page, server.base, null);
    // The create form lists the key with its fingerprint.
    await assertFits(page, server.base, '/dashboard');
    await page.waitForSelector('[data-testid=key-fingerprint]');
    await assertFits(page, server.base, null);
    await page.screenshot({ path: `${ARTIFACTS}/phone-dashboard.png`, fullPage: true });
    // The nav bar's background spans the page.
    const navWidth = await page.evaluate(() => document.querySelector('header').getBoundingClientRect().width);
    assert.equal(navWidth, PHONE.width);

    // The administrator's page on a phone, and Pat disabled from it.
    await logIn(admin.page, server.base, root.username, root.password);
    await admin.page.waitForURL(/\/dashboard$/);
    await assertFits(admin.page, server.base, '/admin');
    const row = `[data-testid=user-row][data-username=${u.username}]`;
    await admin.page.waitForSelector(`${row}[data-disabled=false]`);
    assert.equal(await admin.page.locator(`[data-testid=user-row][data-username=${root.username}] [data-testid=user-disable]`).count(), 0,
      'no disable button on the administrator\'s own account');
    await admin.page.click(`${row} [data-testid=user-disable]`);
    await admin.page.waitForSelector(`${row}[data-disabled=true]`);
    assert.match(await admin.page.textContent(`${row} [data-testid=user-status]`), /Disabled since/);
    await admin.page.screenshot({ path: `${ARTIFACTS}/phone-admin.png`, fullPage: true });

    // Pat's open session is refused on the next request, and the login form says why.
    await page.goto(`${server.base}/settings`);
    await page.waitForURL(/\/login$/);
    await assertFits(page, server.base, null);
    await logIn(page, server.base, u.username, u.password);
    await page.waitForSelector('[data-field-error=login]:not(:empty)');
    assert.match(await page.textContent('[data-field-error=login]'), /disabled by an administrator/);
    await page.screenshot({ path: `${ARTIFACTS}/phone-login-disabled.png`, fullPage: true });

    // Enabled again: Pat logs in, and the settings page lists what happened, newest first.
    await admin.page.click(`${row} [data-testid=user-enable]`);
    await admin.page.waitForSelector(`${row}[data-disabled=false]`);
    await logIn(page, server.base, u.username, u.password);
    await page.waitForURL(/\/dashboard$/);
    await assertFits(page, server.base, '/settings');
    await page.waitForSelector('[data-testid=activity-row]');
    const kinds = await page.$$eval('[data-testid=activity-row]', rows => rows.map(r => r.dataset.kind));
    assert.deepEqual(kinds.slice(0, 4), ['login_succeeded', 'enabled', 'login_failed', 'disabled'], kinds.join(','));
    assert.match(await page.textContent('[data-testid=activity]'), /from 127\.0\.0\.1/);
    await page.screenshot({ path: `${ARTIFACTS}/phone-settings.png`, fullPage: true });

    await Promise.all([page.waitForURL(/\/login$/), page.click('[data-testid=logout]')]);
    for (const path of ['/', '/login', '/signup']) await assertFits(page, server.base, path);
    assert.deepEqual(errors, [], 'no console errors');
  } finally {
    await browser.close();
    await admin.browser.close();
  }
});
