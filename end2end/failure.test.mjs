// A provisioning made to fail on purpose (the server's test-only --fail-step flag) is shown as
// failed, with its reason and the rollback, and leaves nothing behind.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, launch, hydrated, uniqueUser, signup, ARTIFACTS } from './helpers.mjs';

let server;
before(async () => { server = await startServer({ hosting: true, env: { VMW_FAIL_STEP: 'start_vm' } }); });
after(async () => { await server?.stop(); });

test('a failed create shows the reason and the rollback, and leaves nothing behind', { timeout: 300_000 }, async () => {
  const { browser, page, errors } = await launch();
  try {
    const u = uniqueUser('fail');
    await signup(page, server.base, u);
    await hydrated(page);
    await Promise.all([page.waitForURL(/\/hostings\/\d+$/), page.click('[data-testid=create-submit]')]);
    await hydrated(page);
    await page.waitForSelector('[data-testid=state-badge][data-state=failed]', { timeout: 120_000 });
    const reason = await page.textContent('[data-testid=failure-reason]');
    assert.match(reason, /Start the virtual machine failed/);
    assert.match(reason, /removed/);
    await page.waitForSelector('[data-step=start_vm][data-status=failed]');
    for (const step of ['define_domain', 'write_seed', 'create_disk', 'allocate_ports']) {
      await page.waitForSelector(`[data-step=${step}][data-status=undone]`);
    }
    await page.screenshot({ path: `${ARTIFACTS}/failed.png`, fullPage: true });

    // No leftovers: no VM folder, no nginx site file, no libvirt domain of this server.
    const vms = join(server.dataDir, 'vms');
    assert.ok(!existsSync(vms) || readdirSync(vms).length === 0, 'no VM disk or seed left');
    const sites = readdirSync(join(server.dataDir, 'nginx/sites')).filter(f => f.startsWith('hosting-'));
    assert.deepEqual(sites, [], 'no nginx route left');
    const domains = execFileSync('virsh', ['-c', 'qemu:///system', 'list', '--all', '--name'], { encoding: 'utf8' });
    const prefix = server.prefix;
    assert.ok(!domains.split('\n').some(d => d.startsWith(prefix)), `no domain ${prefix}* left`);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
