// An administrator adds a second hypervisor from the admin page's form: each bad field is
// refused at its field with nothing stored; root's `qemu:///session` (with the guest image in a
// storage pool there and this server's node folder checked through it) is refused because it is
// the daemon of the server's own `qemu:///system` (a privileged libvirtd serves both; issue 28:
// its reconciliation would have judged node 1's domains); then a node of a daemon of its own (a
// private libvirt test driver) is added, shown with its health, and removed again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, launch, hydrated, uniqueUser, signup, ROOT, ARTIFACTS } from './helpers.mjs';

const SESSION = 'qemu:///session';

/** The guest image as a volume of the session daemon's pool `vmw-images` (what adding checks). */
function imagePool() {
  const image = process.env.VMW_GUEST_IMAGE_DIR || join(ROOT, 'data/images/current');
  execFileSync(join(ROOT, 'ops/node-image-pool.sh'), [SESSION, image], { stdio: ['ignore', 'inherit', 'inherit'] });
}

let server;
before(async () => { server = await startServer({ hosting: true }); });
after(async () => { await server?.stop(); });

test('an administrator adds a node from the admin page, refused field by field until it checks out, then removes it', { timeout: 180_000 }, async () => {
  imagePool();
  const { browser, page, errors } = await launch();
  try {
    const u = uniqueUser('nodes');
    await signup(page, server.base, u); // the first account administers (--first-user-admin)
    await page.goto(`${server.base}/admin`);
    await hydrated(page);
    assert.equal(await page.locator('[data-testid=node]').count(), 1, 'only the node of the settings');
    await page.click('[data-testid=add-node] summary');
    const form = '[data-testid=add-node-form]';
    const submit = async (fields) => {
      for (const [name, value] of Object.entries(fields)) await page.fill(`${form} [name=${name}]`, value);
      await page.click('[data-testid=add-node-submit]');
      await page.waitForSelector('[data-testid=add-node-submit]:not([disabled])');
    };
    const fieldError = async (name) => (await page.textContent(`${form} [data-field-error=${name}]`)).trim();

    await submit({ name: 'Node 2', libvirt_uri: SESSION, address: '127.0.0.1', memory_mib: '4096', disk_gib: '40' });
    await page.waitForFunction(() => document.querySelector('[data-testid=add-node-form] [data-field-error=name]').textContent.trim() !== '');
    assert.match(await fieldError('name'), /a-z, 0-9 and '-'/);

    await submit({ name: 'node-2', libvirt_uri: 'qemu+ssh://root@127.0.0.1/system?command=/bin/sh' });
    await page.waitForFunction(() => document.querySelector('[data-testid=add-node-form] [data-field-error=libvirt_uri]').textContent.trim() !== '');
    assert.match(await fieldError('libvirt_uri'), /command/);
    assert.equal(await fieldError('name'), '', 'the name error is gone once the name is right');

    await submit({ libvirt_uri: SESSION, address: 'localhost' });
    await page.waitForFunction(() => document.querySelector('[data-testid=add-node-form] [data-field-error=address]').textContent.trim() !== '');
    assert.match(await fieldError('address'), /not an IP address/);

    await submit({ address: '127.0.0.1', memory_mib: '10' });
    await page.waitForFunction(() => document.querySelector('[data-testid=add-node-form] [data-field-error=memory_mib]').textContent.trim() !== '');
    assert.match(await fieldError('memory_mib'), /64 MiB/);

    // Nothing was stored by any refusal.
    const token = await apiToken(server.base, u);
    const listed = async () => (await (await fetch(`${server.base}/api/v1/admin/nodes`, { headers: { Authorization: `Bearer ${token}` } })).json()).map(n => n.name);
    assert.equal((await listed()).length, 1);

    // Root's session daemon answers, has the image and sees this server's node folder, but it is
    // the daemon of node 1 (qemu:///system): refused at the URI, nothing stored.
    await submit({ memory_mib: '4096' });
    await page.waitForFunction(() => document.querySelector('[data-testid=add-node-form] [data-field-error=libvirt_uri]').textContent.trim() !== '');
    assert.match(await fieldError('libvirt_uri'), /reaches the libvirt daemon of node/);
    assert.equal((await listed()).length, 1);

    // A daemon of its own: a private libvirt test driver.
    const dir = mkdtempSync(join(tmpdir(), 'vmw-e2e-node2-'));
    writeFileSync(join(dir, 'node2.xml'), '<node/>');
    await submit({ libvirt_uri: `test://${dir}/node2.xml` });
    await page.waitForSelector('[data-testid=node][data-node=node-2]', { timeout: 60_000 });
    const card = '[data-testid=node][data-node=node-2]';
    await page.waitForSelector(`${card} [data-testid=node-health][data-connected=true]`);
    const api = (await (await fetch(`${server.base}/api/v1/admin/nodes`, { headers: { Authorization: `Bearer ${token}` } })).json()).find(n => n.name === 'node-2');
    assert.ok(api.memory_limit_mib >= 4096, `the node's memory limit comes from the form: ${api.memory_limit_mib}`);
    assert.match(await page.textContent(`${card} [data-testid=node-memory]`), new RegExp(`committed of ${api.memory_limit_mib} MiB`));
    assert.match(await page.textContent('[data-testid=node-added]'), /node-2 added/);
    assert.ok((await listed()).includes('node-2'), 'the API lists it too');
    await page.screenshot({ path: `${ARTIFACTS}/admin-add-node.png`, fullPage: true });

    // The same name again: refused by its name, and still one node-2.
    await hydrated(page);
    await submit({ name: 'node-2', libvirt_uri: SESSION, address: '127.0.0.1', memory_mib: '4096', disk_gib: '40' });
    await page.waitForFunction(() => document.querySelector('[data-testid=add-node-form] [data-field-error=name]').textContent.trim() !== '');
    assert.match(await fieldError('name'), /already has this name/);
    assert.equal((await listed()).filter(n => n === 'node-2').length, 1);

    // Removed while empty.
    await page.click(`${card} [data-testid=node-remove]`);
    await page.waitForSelector(card, { state: 'hidden' });
    assert.ok(!(await listed()).includes('node-2'), 'the node is gone from the API too');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

/** A bearer token of user `u` (the API's login). */
async function apiToken(base, u) {
  const r = await fetch(`${base}/api/v1/auth/login`, {
    method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ username: u.email, password: u.password }),
  });
  assert.equal(r.status, 200);
  return (await r.json()).access_token;
}
