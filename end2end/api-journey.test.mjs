// The original system's curl journey against the real stack (server + nginx + a real VM):
// register, log in, create, poll until running, fetch http://HOST/{user_id}/ through nginx,
// SSH in on the returned port with the key sent at create, put it to sleep and wake it with a
// visit through nginx, delete, and see the site gone.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, uniqueUser, waitRunning } from './helpers.mjs';

let server;
before(async () => { server = await startServer({ hosting: true }); });
after(async () => { await server?.stop(); });

const sleep = ms => new Promise(r => setTimeout(r, ms));

test('register, login, create, poll, site through nginx, ssh, delete', { timeout: 600_000 }, async () => {
  const H = server.base;
  const u = uniqueUser('curl');
  let r = await fetch(`${H}/api/v1/auth/register`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email: u.email, password: u.password, username: u.username }),
  });
  assert.equal(r.status, 201);
  const me0 = await r.json();

  r = await fetch(`${H}/api/v1/auth/login`, {
    method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ username: u.email, password: u.password }),
  });
  assert.equal(r.status, 200);
  const { access_token, token_type } = await r.json();
  assert.equal(token_type, 'bearer');
  const auth = { Authorization: `Bearer ${access_token}` };

  r = await fetch(`${H}/api/v1/users/me`, { headers: auth });
  assert.equal((await r.json()).id, me0.id);

  const dir = mkdtempSync(join(tmpdir(), 'vmw-key-'));
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'id')]);
  const pub = readFileSync(join(dir, 'id.pub'), 'utf8').trim();

  const t0 = Date.now();
  r = await fetch(`${H}/api/v1/host`, { method: 'POST', headers: { ...auth, 'Content-Type': 'application/json' }, body: JSON.stringify({ ssh_public_key: pub }) });
  assert.equal(r.status, 202);
  assert.match((await r.json()).status, /^(queued|provisioning)$/, 'the create call returns before the VM boots');

  let { host, ms } = await waitRunning(H, auth, { since: t0 });
  console.log(`# create -> running in ${ms} ms`);

  const page = await fetch(`${H}/${me0.id}/`);
  assert.equal(page.status, 200);
  assert.match(await page.text(), new RegExp(`Welcome to ${u.username}`));

  const out = execFileSync('ssh', ['-i', join(dir, 'id'), '-p', String(host.ssh_port), '-o', 'StrictHostKeyChecking=no',
    '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR', 'ubuntu@127.0.0.1', 'id -un; hostname'], { encoding: 'utf8' });
  assert.deepEqual(out.trim().split('\n'), ['ubuntu', u.username]);

  // Asleep: saved to disk, no QEMU process. The next visits through nginx (two at once) wake it:
  // both get the page, neither the site-down page.
  r = await fetch(`${H}/api/v1/hostings/${host.id}/sleep?wait=120`, { method: 'POST', headers: auth });
  assert.equal(r.status, 202);
  const asleep = await r.json();
  assert.equal(asleep.state, 'sleeping', asleep.state_reason);
  assert.equal(spawnSync('pgrep', ['-f', `guest=${asleep.vm_id},`]).status, 1, 'no QEMU process while asleep');
  const tw = Date.now();
  const woken = await Promise.all([fetch(`${H}/${me0.id}/`), fetch(`${H}/${u.username}/`)]);
  console.log(`# asleep -> 200 through nginx in ${Date.now() - tw} ms`);
  for (const w of woken) {
    assert.equal(w.status, 200);
    assert.match(await w.text(), new RegExp(`Welcome to ${u.username}`));
  }
  host = await (await fetch(`${H}/api/v1/host`, { headers: auth })).json();
  assert.equal(host.state, 'running', 'the visit woke it');

  r = await fetch(`${H}/api/v1/host?wait=120`, { method: 'DELETE', headers: auth });
  assert.equal(r.status, 204);
  r = await fetch(`${H}/api/v1/host`, { headers: auth });
  assert.equal(r.status, 404);
  assert.equal((await r.json()).error.code, 'not_found');
  const gone = await fetch(`${H}/${me0.id}/`);
  assert.equal(gone.headers.get('x-webhoster-site'), null, 'nginx no longer routes to a VM');
  assert.doesNotMatch(await gone.text(), /Welcome to/);
});
