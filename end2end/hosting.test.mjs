// The whole journey in a real browser against real VMs: sign up, add an SSH key, create a
// site, watch the live page go through the steps to running without reloading, open the site
// through nginx, stop and start it, delete it. Screenshots go to end2end/artifacts/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, launch, hydrated, uniqueUser, signup, assertFits, PHONE, ARTIFACTS } from './helpers.mjs';

const BOOT = 300_000; // a cold boot under TCG takes 20-40 s; several may queue

let server;
before(async () => { server = await startServer({ hosting: true }); });
after(async () => { await server?.stop(); });

function keygen() {
  const dir = mkdtempSync(join(tmpdir(), 'vmw-key-'));
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'e2e@laptop', '-f', join(dir, 'id')]);
  return { path: join(dir, 'id'), pub: readFileSync(join(dir, 'id.pub'), 'utf8').trim() };
}

function ssh(key, port, cmd) {
  return execFileSync('ssh', ['-i', key, '-p', String(port), '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
    '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR', '-o', 'ConnectTimeout=20', 'ubuntu@127.0.0.1', cmd], { encoding: 'utf8' });
}

const stateOf = page => page.getAttribute('[data-testid=state-badge]', 'data-state');

test('create a site from the browser and run it', { timeout: 900_000 }, async () => {
  const { browser, page, errors } = await launch();
  try {
    const u = uniqueUser('web');
    await signup(page, server.base, u);

    // An SSH key, added in settings, with its fingerprint shown.
    const key = keygen();
    await page.goto(`${server.base}/settings`);
    await hydrated(page);
    await page.fill('#f-name', 'laptop');
    await page.fill('#f-public_key', key.pub);
    await page.click('[data-testid=add-key-submit]');
    await page.waitForSelector('[data-testid=fingerprint]');
    const fp = execFileSync('ssh-keygen', ['-lf', `${key.path}.pub`], { encoding: 'utf8' }).split(' ')[1];
    assert.equal((await page.textContent('[data-testid=fingerprint]')).trim(), fp);

    // Create: lands on the live page at once.
    await page.goto(`${server.base}/dashboard`);
    await hydrated(page);
    assert.equal(await page.inputValue('#f-slug'), u.username, 'the site name defaults to the username');
    await Promise.all([page.waitForURL(/\/hostings\/\d+$/), page.click('[data-testid=create-submit]')]);
    await hydrated(page);
    await page.waitForSelector('[data-testid=progress]');
    // Steps turn green live, without a reload: wait until at least the VM is started.
    await page.waitForSelector('[data-step=start_vm][data-status=succeeded]', { timeout: BOOT });
    await page.screenshot({ path: `${ARTIFACTS}/progress.png`, fullPage: true });
    const navigations = [];
    page.on('framenavigated', f => { if (f === page.mainFrame()) navigations.push(f.url()); });
    await page.waitForSelector('[data-testid=state-badge][data-state=running]', { timeout: BOOT });
    assert.deepEqual(navigations, [], 'the page followed the provisioning without reloading');
    await page.waitForSelector('[data-testid=running-view]');
    await page.screenshot({ path: `${ARTIFACTS}/running.png`, fullPage: true });

    // The site through nginx, in the browser.
    const siteUrl = await page.getAttribute('[data-testid=site-url]', 'href');
    assert.ok(siteUrl.includes(`/${u.username}/`));
    const site = await browser.newPage();
    await site.goto(siteUrl.replace('http://127.0.0.1/', `${server.base}/`));
    assert.match(await site.textContent('h1'), new RegExp(`Welcome to ${u.username}`));
    await site.close();

    // SSH with the key from settings, on the port the page shows.
    const sshCmd = (await page.textContent('[data-testid=ssh-command]')).trim();
    const port = Number(sshCmd.match(/-p (\d+)/)[1]);
    assert.equal(ssh(key.path, port, 'hostname').trim(), u.username);

    // Stop, then start: the badge follows live.
    await page.click('[data-testid=action-stop]');
    await page.waitForSelector('[data-testid=state-badge][data-state=stopped]:not(:has-text("…"))', { timeout: 120_000 });
    assert.equal(await page.isDisabled('[data-testid=action-stop]'), true);
    await page.click('[data-testid=action-start]');
    await page.waitForSelector('[data-testid=state-badge][data-state=running]:not(:has-text("…"))', { timeout: BOOT });

    // The console shows the VM's boot.
    await page.click('[data-testid=console-toggle]');
    await page.waitForFunction(() => (document.querySelector('[data-testid=console]')?.textContent || '').includes('login:'), null, { timeout: 30_000 });

    // The charts: a clock-time axis once there are two samples, and the value and time under
    // the pointer (below two samples a chart says it is collecting them).
    const cpu = '[data-testid=chart-cpu-card]';
    const collecting = await page.locator(`${cpu} [data-testid=chart-collecting]`).count();
    if (collecting) assert.match(await page.textContent(`${cpu} [data-testid=chart-collecting]`), /collecting samples/i);
    await page.waitForSelector(`${cpu} [data-testid=chart-axis-label]`, { timeout: 60_000 });
    const labels = await page.$$eval(`${cpu} [data-testid=chart-axis-label]`, ls => ls.map(l => l.textContent));
    assert.equal(labels.length, 3, labels.join(' '));
    for (const l of labels) assert.match(l, /^\d\d:\d\d:\d\d$/);
    assert.equal(await page.locator(`${cpu} [data-testid=chart-collecting]`).count(), 0);
    await page.hover(`${cpu} [data-testid=chart-cpu-plot] svg`);
    await page.waitForSelector(`${cpu} [data-testid=chart-readout]:not(:empty)`);
    assert.match(await page.textContent(`${cpu} [data-testid=chart-readout]`), /^\d+\.\d % at \d\d:\d\d:\d\d$/);

    // On a phone, with a site: no page scrolls sideways.
    const hostingPath = new URL(page.url()).pathname;
    await page.setViewportSize(PHONE);
    await assertFits(page, server.base, hostingPath);
    await page.waitForSelector('[data-testid=running-view]');
    await assertFits(page, server.base, null);
    await page.screenshot({ path: `${ARTIFACTS}/phone-hosting.png`, fullPage: true });
    await assertFits(page, server.base, '/dashboard');
    await page.waitForSelector('[data-testid=hosting-row]');
    await assertFits(page, server.base, null);
    await page.screenshot({ path: `${ARTIFACTS}/phone-dashboard-site.png`, fullPage: true });
    await assertFits(page, server.base, '/settings');
    await assertFits(page, server.base, '/admin');
    const adminRow = `[data-testid=admin-hosting-row][data-slug=${u.username}]`;
    await page.waitForSelector(adminRow);
    assert.equal(await page.textContent(`${adminRow} [data-testid=owner]`), u.username);
    assert.equal(await page.isDisabled(`${adminRow} [data-testid=admin-action-stop]`), false, 'a running site can be stopped from here');
    assert.equal(await page.isDisabled(`${adminRow} [data-testid=admin-action-start]`), true);
    assert.match(await page.textContent('[data-testid=node-running]'), /^1$/);
    await page.screenshot({ path: `${ARTIFACTS}/phone-admin-site.png`, fullPage: true });
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto(`${server.base}${hostingPath}`);
    await hydrated(page);
    await page.waitForSelector('[data-testid=state-badge][data-state=running]');

    // The admin page (the first account is the administrator: helpers.mjs passes --first-user-admin) lists it.
    const admin = await page.context().newPage();
    await admin.goto(`${server.base}/admin`);
    await admin.waitForSelector('[data-testid=admin-hostings]');
    assert.match(await admin.textContent('[data-testid=admin-hostings]'), new RegExp(u.username));
    await admin.screenshot({ path: `${ARTIFACTS}/admin.png`, fullPage: true });
    await admin.close();

    // Delete, confirming with the slug.
    await page.click('[data-testid=action-delete]');
    assert.equal(await page.isDisabled('[data-testid=delete-confirm-button]'), true);
    await page.fill('[data-testid=delete-confirm-input]', u.username);
    await page.click('[data-testid=delete-confirm-button]');
    await page.waitForSelector('[data-testid=deleted]', { timeout: 120_000 });
    const gone = await fetch(`${server.base}/${u.username}/`);
    assert.equal(gone.headers.get('x-webhoster-site'), null, 'nginx no longer routes to the VM');
    await page.goto(`${server.base}/dashboard`);
    await page.waitForSelector('[data-testid=empty-state]');
    assert.deepEqual(errors, [], 'no console errors');
  } finally {
    await browser.close();
  }
});
