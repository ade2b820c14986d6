// The API docs page through the real nginx: Swagger UI from our own assets renders every
// operation of the generated document, under the page's CSP (no console errors), and "Try it
// out" calls this server with the bearer token given to "Authorize".
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ARTIFACTS, apiUser, launch, startServer } from './helpers.mjs';

let server;
before(async () => { server = await startServer({ hosting: true }); });
after(async () => { await server?.stop(); });

test('the docs page lists every operation and tries one with a bearer token', { timeout: 120_000 }, async () => {
  const H = server.base;
  const { user: u, token: access_token } = await apiUser(H, 'docs');
  const doc = await (await fetch(`${H}/api/v1/openapi.json`)).json();
  const ops = Object.values(doc.paths).reduce((n, item) => n + Object.keys(item).length, 0);

  const { browser, page, errors } = await launch();
  const external = [];
  page.on('request', req => { if (!req.url().startsWith(H)) external.push(req.url()); });
  try {
    await page.goto(`${H}/api/v1/docs`);
    await page.waitForSelector('.swagger-ui .opblock', { timeout: 30_000 });
    assert.equal(await page.locator('.swagger-ui .opblock').count(), ops, 'one block per documented operation');
    const paths = await page.locator('.opblock-summary-path').allInnerTexts();
    for (const p of ['/api/v1/host', '/api/v1/hostings/{id}/stream', '/api/v1/users/me']) {
      assert.ok(paths.some(t => t.replace(/\u200b/g, '') === p), `${p} is listed: ${paths}`);
    }

    // Authorize with the token, then run GET /api/v1/users/me from the page.
    await page.click('button.authorize');
    await page.fill('.modal-ux input', access_token);
    await page.click('.modal-ux button.authorize');
    await page.click('.modal-ux button.btn-done, .modal-ux .close-modal');
    const me = page.locator('#operations-auth-accounts_me');
    await me.locator('.opblock-summary').click();
    await me.locator('.try-out__btn').click();
    await me.locator('button.execute').click();
    const status = me.locator('.live-responses-table tr.response .response-col_status').first();
    await status.waitFor({ timeout: 15_000 });
    assert.equal((await status.innerText()).trim(), '200');
    assert.match(await me.locator('.live-responses-table tr.response .response-col_description').first().innerText(), new RegExp(u.username));
    await page.screenshot({ path: join(ARTIFACTS, 'api-docs.png') });
    assert.deepEqual(external, [], 'nothing is loaded from another origin');
    assert.deepEqual(errors, [], 'no script or CSP errors');
  } finally {
    await browser.close();
  }
});
