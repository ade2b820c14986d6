// Custom domains from the hosting page, in a real browser against a real VM: a name that breaks
// a rule shows its field error, a domain is added and listed as "Waiting for DNS" with the DNS
// records that prove it (a CNAME to the site, a TXT record with its token), "Check now" keeps it
// listed, the HSTS switch holds across a reload, and the domain is removed after the
// confirmation. (The checker that verifies the DNS and issues the certificate extends this to
// "goes active".)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launch, hydrated, uniqueUser, signupAndCreate, ARTIFACTS } from './helpers.mjs';

const BOOT = 300_000;

let server;
before(async () => { server = await startServer({ hosting: true }); });
after(async () => { await server?.stop(); });

test('add a custom domain, see its DNS records and state, remove it', { timeout: 900_000 }, async () => {
  const { browser, page, errors } = await launch();
  try {
    const u = uniqueUser('dom');
    await signupAndCreate(page, server.base, u, BOOT);
    await page.waitForSelector('[data-testid=domains-empty]');

    // Rules: a wildcard and an IP address are refused with their own messages.
    await page.fill('#f-domain-name', '*.example.com');
    await page.click('[data-testid=domain-submit]');
    await page.waitForSelector('[data-field-error=name]:has-text("Wildcard")');
    await page.fill('#f-domain-name', '192.0.2.1');
    await page.click('[data-testid=domain-submit]');
    await page.waitForSelector('[data-field-error=name]:has-text("IP address")');
    assert.equal(await page.locator('[data-testid=domain]').count(), 0);

    // An international name: stored as ASCII, shown as typed.
    const name = `${u.username}.bücher.example`;
    await page.fill('#f-domain-name', name);
    await page.click('[data-testid=domain-submit]');
    const row = page.locator('[data-testid=domain]').first();
    await row.waitFor();
    const ascii = await row.getAttribute('data-domain-name');
    assert.match(ascii, /\.xn--bcher-kva\.example$/);
    assert.match(await row.locator('[data-testid=domain-name]').innerText(), /bücher\.example/);
    await row.locator('[data-testid=domain-state][data-state=waiting_dns]:has-text("Waiting for DNS")').waitFor();
    assert.equal(await row.locator('[data-testid=domain-state]').getAttribute('aria-live'), 'polite');
    const cname = await row.locator('[data-testid=domain-cname]').innerText();
    assert.match(cname, new RegExp(`^${ascii.replace(/\./g, '\\.')}\\. CNAME [a-z0-9-]+\\..+\\.$`), cname);
    const txt = await row.locator('[data-testid=domain-txt]').innerText();
    assert.match(txt, new RegExp(`^_vmw-verify\\.${ascii.replace(/\./g, '\\.')}\\. TXT "[0-9a-f]{32}"$`), txt);
    await page.waitForSelector('[data-testid=events] li:has-text("added")');

    // The same name again: taken.
    await page.fill('#f-domain-name', ascii);
    await page.click('[data-testid=domain-submit]');
    await page.waitForSelector('[data-field-error=name]:has-text("already added")');

    await row.locator('[data-testid=domain-check]').click();
    await row.locator('[data-testid=domain-state]').waitFor();
    await page.screenshot({ path: `${ARTIFACTS}/domains.png`, fullPage: true });

    // HSTS: on, and still on after a reload.
    await page.check('[data-testid=hsts-toggle]');
    await page.waitForTimeout(500);
    await page.reload();
    await hydrated(page);
    await page.waitForSelector('[data-testid=hsts-toggle]:checked');
    await page.uncheck('[data-testid=hsts-toggle]');

    // Remove, after the confirmation.
    await page.locator('[data-testid=domain] [data-testid=domain-remove]').first().click();
    await page.click('[data-testid=domain-remove-confirm-button]');
    await page.waitForSelector('[data-testid=domains-empty]');
    await page.waitForSelector('[data-testid=events] li:has-text("removed")');
    assert.deepEqual(errors, [], 'no console errors');
  } finally {
    await browser.close();
  }
});
