// A backup cut short (issue 31): the service SIGKILLed in the middle of a site's upload leaves
// the repository consistent (`restic check`) and the site as it was; the backup shows failed.
// The disaster drill (issue 31): three sites with distinct content are backed up to a
// repository off the data dir; the node is then lost (service stopped, its VMs destroyed, its
// data dir deleted); `vm-webhoster restore-node --from-repository ...` rebuilds it from the
// repository alone, and once the service runs again every site serves its own content and every
// owner logs in with their old password. Real server, nginx, VMs (cold boots under TCG) and restic.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startServer, uniqueUser, waitRunning, sshRun as ssh, SERVER_BIN } from './helpers.mjs';

const sleep = ms => new Promise(r => setTimeout(r, ms));
const offNode = mkdtempSync(join(tmpdir(), 'vmw-drill-repo-'));
const repo = join(offNode, 'repository');
const password = join(offNode, 'password');
writeFileSync(password, randomBytes(24).toString('base64'));
chmodSync(password, 0o600);
const backupArgs = ['--backup-repository', repo, '--backup-password-file', password];

let server;
before(async () => { server = await startServer({ hosting: true, args: backupArgs }); });
after(async () => { await server?.stop(); rmSync(offNode, { recursive: true, force: true }); });

function restic(...args) {
  return execFileSync('restic', ['-r', repo, '--password-file', password, '--no-cache', ...args], { encoding: 'utf8' });
}

async function api(path, { method = 'GET', auth, body } = {}) {
  const headers = { ...(auth || {}) };
  if (body) headers['Content-Type'] = 'application/json';
  const r = await fetch(`${server.base}${path}`, { method, headers, body: body && JSON.stringify(body) });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch {}
  return { status: r.status, json, text };
}

async function login(u) {
  const r = await fetch(`${server.base}/api/v1/auth/login`, {
    method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ username: u.email, password: u.password }),
  });
  assert.equal(r.status, 200, `${u.username} logs in`);
  return { Authorization: `Bearer ${(await r.json()).access_token}` };
}

const sites = [];
let key;

async function backupOf(s, bid) {
  const list = (await api(`/api/v1/hostings/${s.host.id}/backups`, { auth: s.auth })).json;
  return (list.backups || list).find(x => x.id === bid);
}

async function restart() {
  const { dataDir, prefix, nginxPort, tlsPort, env } = server;
  server = await startServer({ hosting: true, args: backupArgs, dataDir, prefix, nginxPort, tlsPort, env });
}

test('a backup cut short by the service being killed leaves the repository consistent and the site as it was', { timeout: 1_200_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmw-key-'));
  key = join(dir, 'id');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
  const pub = readFileSync(`${key}.pub`, 'utf8').trim();

  // Three owners, each with a site (created together: the boots share the 2 cores).
  for (const name of ['drilla', 'drillb', 'drillc']) {
    const u = uniqueUser(name);
    assert.equal((await api('/api/v1/auth/register', { method: 'POST', body: { email: u.email, password: u.password, username: u.username } })).status, 201);
    const auth = await login(u);
    const r = await api('/api/v1/host', { method: 'POST', auth, body: { ssh_public_key: pub } });
    assert.equal(r.status, 202, r.text);
    sites.push({ u, auth, since: Date.now() });
  }
  for (const s of sites) {
    const { host } = await waitRunning(server.base, s.auth, { since: s.since, timeout: 600_000 });
    s.host = host;
    s.content = `drill content of ${s.u.username} ${randomBytes(6).toString('hex')}`;
    ssh(key, host.ssh_port, `echo '${s.content}' > /var/www/html/index.html && sync`);
    const page = await fetch(`${server.base}/${s.u.username}/`);
    assert.equal((await page.text()).trim(), s.content);
  }

  // A backup of the first site, the service killed once the upload runs.
  const [a] = sites;
  const r = await api(`/api/v1/hostings/${a.host.id}/backups`, { method: 'POST', auth: a.auth, body: {} });
  assert.equal(r.status, 202, r.text);
  for (let i = 0; ; i++) {
    const b = await backupOf(a, r.json.id);
    if (b.captured_from) break;
    assert.equal(b.state, 'running', b.error);
    assert.ok(i < 1200, 'the capture ends within 2 minutes');
    await sleep(100);
  }
  await sleep(500);
  server.proc.kill('SIGKILL');
  await new Promise(res => server.proc.exitCode !== null || server.proc.signalCode ? res() : server.proc.once('exit', res));
  // The killed restic's lock is stale once its process is gone (reaped): `unlock` removes only
  // stale locks, and `check` wants none.
  for (let i = 0; ; i++) {
    await sleep(1000);
    try {
      restic('unlock');
      restic('check');
      break;
    } catch (e) {
      assert.ok(i < 30, `restic check passes within 30 s of the kill: ${e.stderr || e}`);
    }
  }

  await restart();
  const b = await backupOf(a, r.json.id);
  assert.equal(b.state, 'failed', 'the cut backup shows failed after the restart');
  assert.match(b.error, /stopped/);
  const host = (await api('/api/v1/host', { auth: a.auth })).json;
  assert.equal(host.status, 'running', host.state_reason);
  assert.equal((await (await fetch(`${server.base}/${a.u.username}/`)).text()).trim(), a.content, 'the site is as it was');
});

test('disaster drill: a node rebuilt from the backup repository serves every site and logs every owner in', { timeout: 1_500_000 }, async () => {
  assert.equal(sites.length, 3, 'the sites of the test before');

  // Backed up; the service's state follows on its own (database and secrets).
  for (const s of sites) {
    const r = await api(`/api/v1/hostings/${s.host.id}/backups`, { method: 'POST', auth: s.auth, body: {} });
    assert.equal(r.status, 202, r.text);
    s.backup = r.json.id;
  }
  for (const s of sites) {
    for (let i = 0; ; i++) {
      const b = await backupOf(s, s.backup);
      if (b.state === 'succeeded') break;
      assert.notEqual(b.state, 'failed', b.error);
      assert.ok(i < 300, 'the backup ends within 5 minutes');
      await sleep(1000);
    }
  }
  const backedUp = Date.now();
  for (let i = 0; ; i++) {
    const states = JSON.parse(restic('snapshots', '--tag', 'kind-state', '--json'));
    if (states.some(st => Date.parse(st.time) > backedUp - 1000)) break;
    assert.ok(i < 120, 'a state backup follows the site backups within 2 minutes');
    await sleep(1000);
  }

  // The node is lost: service stopped, VMs destroyed, data dir deleted.
  const { dataDir, prefix, nginxPort, tlsPort, env, args } = server;
  await server.stop();
  server = null;
  rmSync(dataDir, { recursive: true, force: true });

  // Rebuilt from the repository alone.
  const t0 = Date.now();
  const restoreArgs = ['restore-node', ...args.filter(a => a !== 'serve')];
  const out = spawnSync(SERVER_BIN, restoreArgs, { env: { ...process.env, VMW_LOG: 'warn', ...env }, encoding: 'utf8', timeout: 900_000 });
  console.log(out.stdout);
  assert.equal(out.status, 0, `restore-node: ${out.stdout}\n${out.stderr}`);
  console.log(`# restore-node of 3 sites: ${Date.now() - t0} ms`);

  server = await startServer({ hosting: true, args: backupArgs, dataDir, prefix, nginxPort, tlsPort, env });
  for (const s of sites) {
    const auth = await login(s.u);
    const host = (await api('/api/v1/host', { auth })).json;
    assert.equal(host.status, 'running', host.state_reason);
    const page = await fetch(`${server.base}/${s.u.username}/`);
    assert.equal(page.status, 200);
    assert.equal((await page.text()).trim(), s.content, `${s.u.username}'s site serves what it served at its backup`);
  }
});
