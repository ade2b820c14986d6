// Accounts in a real browser: sign up, log out, log in, field errors (also while typing),
// dark mode that sticks, and the same forms with JavaScript disabled.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launch, hydrated, uniqueUser, signup, ARTIFACTS } from './helpers.mjs';

let server;
before(async () => { server = await startServer({ hosting: false }); });
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
