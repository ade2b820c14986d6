// Backups from the hosting page (issue 31), real server + nginx + VM + restic: "Back up now" shows
// its progress bar and ends as a succeeded row; the site's page changes; "Restore…" in place shows
// its progress, the site serves the backed-up page again, and the snapshot taken first ("before
// restoring backup N") is there to undo it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, launch, hydrated, uniqueUser, waitRunning, sshRun as ssh, ARTIFACTS } from './helpers.mjs';

let server, browser;
before(async () => { server = await startServer({ hosting: true }); });
after(async () => { await browser?.close(); await server?.stop(); });

test('back up now, change the site, restore in place from the page', { timeout: 900_000 }, async () => {
  const H = server.base;
  const u = uniqueUser('bak');
  let r = await fetch(`${H}/api/v1/auth/register`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email: u.email, password: u.password, username: u.username }) });
  assert.equal(r.status, 201);
  r = await fetch(`${H}/api/v1/auth/login`, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ username: u.email, password: u.password }) });
  const auth = { Authorization: `Bearer ${(await r.json()).access_token}` };
  const dir = mkdtempSync(join(tmpdir(), 'vmw-key-'));
  const key = join(dir, 'id');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
  r = await fetch(`${H}/api/v1/host`, { method: 'POST', headers: { ...auth, 'Content-Type': 'application/json' },
    body: JSON.stringify({ ssh_public_key: readFileSync(`${key}.pub`, 'utf8').trim() }) });
  assert.equal(r.status, 202);
  const { host } = await waitRunning(H, auth, { timeout: 600_000 });
  const site = `${H}/${u.username}/`;
  ssh(key, host.ssh_port, "echo 'version one' > /var/www/html/index.html && sync");
  assert.equal((await (await fetch(site)).text()).trim(), 'version one');

  let page;
  ({ browser, page } = await launch());
  await page.goto(`${H}/login`);
  await hydrated(page);
  await page.fill('#f-login', u.username);
  await page.fill('#f-password', u.password);
  await Promise.all([page.waitForURL(/\/dashboard$/), page.click('[data-testid=login-submit]')]);
  await page.goto(`${H}/hostings/${host.id}`);
  await hydrated(page);
  await page.waitForSelector('[data-testid=backups]');
  assert.match(await page.textContent('[data-testid=backup-last]'), /No successful backup yet/);

  // Back up now: a progress bar while it runs, then a succeeded row.
  await page.click('[data-testid=backup-now]');
  await page.waitForSelector('[data-testid=operation-progress]', { timeout: 30_000 });
  await page.waitForSelector('[data-testid=backup] [data-testid=backup-state]:has-text("Succeeded")', { timeout: 300_000 });
  await page.waitForSelector('[data-testid=operation-progress]', { state: 'detached', timeout: 30_000 });
  assert.match(await page.textContent('[data-testid=backup-last]'), /Last successful backup/);
  await page.screenshot({ path: `${ARTIFACTS}/backups.png` });

  ssh(key, host.ssh_port, "echo 'version two' > /var/www/html/index.html && sync");
  assert.equal((await (await fetch(site)).text()).trim(), 'version two');

  // Restore in place: the dialog, the progress bar, the old page back, the snapshot taken first.
  await page.click('[data-testid=backup] [data-testid=backup-restore]');
  await page.waitForSelector('[data-testid=backup-restore-dialog]');
  assert.ok(await page.isChecked('[data-testid=backup-restore-in-place]'), 'in place is the default');
  await page.click('[data-testid=backup-restore-confirm]');
  await page.waitForSelector('[data-testid=operation-progress]', { timeout: 30_000 });
  await page.waitForSelector('[data-testid=operation-progress]', { state: 'detached', timeout: 600_000 });
  await page.waitForSelector('[data-testid=state-badge][data-state=running]:not(:has-text("…"))', { timeout: 60_000 });
  assert.equal((await (await fetch(site)).text()).trim(), 'version one', 'the site serves the backed-up page again');
  await page.waitForSelector('[data-testid=snapshot]:has-text("before restoring backup")', { timeout: 30_000 });

  // A daily schedule: saved, told back in words, with the next run.
  await page.selectOption('[data-testid=backup-frequency]', 'daily');
  await page.fill('[data-testid=backup-time]', '03:30');
  await page.click('[data-testid=backup-schedule-save]');
  await page.waitForSelector('[data-testid=backup-schedule-when]:has-text("Daily, 03:30 UTC")', { timeout: 30_000 });
  await page.waitForSelector('[data-testid=backup-next]:has-text("Next scheduled backup")');
  r = await fetch(`${H}/api/v1/hostings/${host.id}/backup-schedule`, { headers: auth });
  assert.equal(r.status, 200);
  const sched = await r.json();
  assert.equal(sched.schedule.frequency, 'daily');
  assert.equal(sched.schedule.hour, 3);
  assert.equal(sched.schedule.minute, 30);
  assert.ok(sched.next_run_at > Date.now(), 'the next run is ahead');
});
