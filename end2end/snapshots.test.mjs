// Snapshots from the hosting page, in a real browser against a real VM: a bad name shows its
// field error, a snapshot is taken and listed, restored (after the confirmation) with the site
// running again, and deleted. (service/tests/real_vm.rs checks the restored file through nginx.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launch, uniqueUser, signupAndCreate, ARTIFACTS } from './helpers.mjs';

const BOOT = 300_000;

let server;
before(async () => { server = await startServer({ hosting: true }); });
after(async () => { await server?.stop(); });

test('take, restore and delete a snapshot from the hosting page', { timeout: 900_000 }, async () => {
  const { browser, page, errors } = await launch();
  try {
    const u = uniqueUser('snap');
    await signupAndCreate(page, server.base, u, BOOT);
    await page.waitForSelector('[data-testid=snapshots-empty]');

    // A name with a slash: its field error, nothing taken.
    await page.fill('#f-snapshot-name', 'a/b');
    await page.click('[data-testid=snapshot-submit]');
    await page.waitForSelector('[data-field-error=name]:has-text("not allowed")');
    assert.equal(await page.locator('[data-testid=snapshot]').count(), 0);

    await page.fill('#f-snapshot-name', 'before changes');
    await page.click('[data-testid=snapshot-submit]');
    await page.waitForSelector('[data-testid=snapshot] [data-testid=snapshot-name]:has-text("before changes")');
    // Ready once the site is running again (the list is read again when the operation ends).
    await page.waitForSelector('[data-testid=snapshot-restore]:not([disabled])', { timeout: 120_000 });
    await page.waitForSelector('[data-testid=state-badge][data-state=running]');
    await page.waitForSelector('[data-testid=events] li:has-text("Snapshot \'before changes\' taken")');
    await page.screenshot({ path: `${ARTIFACTS}/snapshots.png`, fullPage: true });

    // Restore: asks first, then the site is running again from the snapshot.
    await page.click('[data-testid=snapshot-restore]');
    await page.waitForSelector('[data-testid=snapshot-restore-confirm]');
    await page.click('[data-testid=snapshot-restore-confirm-button]');
    await page.waitForSelector('[data-testid=events] li:has-text("Snapshot \'before changes\' restored")', { timeout: 120_000 });
    await page.waitForSelector('[data-testid=state-badge][data-state=running]');

    await page.waitForSelector('[data-testid=snapshot-delete]:not([disabled])');
    await page.click('[data-testid=snapshot-delete]');
    await page.waitForSelector('[data-testid=snapshots-empty]');
    assert.deepEqual(errors, [], 'no console errors');
  } finally {
    await browser.close();
  }
});
