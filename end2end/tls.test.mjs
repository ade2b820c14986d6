// HTTPS and custom domains against real parts, all on loopback: a real VM, nginx, Pebble (an
// ACME server) and BIND's named (the test zones, RFC 2136 updates with TSIG, Pebble's lookups).
// - the sites' wildcard `*.sites.test` is issued by DNS-01 and serves {slug}.sites.test;
// - `www.example.test` (a CNAME to the site, added from the hosting page in Chromium) and
//   `example.test` (a TXT token, through the API) are verified, get certificates by HTTP-01 and
//   serve the site over HTTPS; HTTP redirects;
// - Pebble's short validity forces a renewal, which is observed;
// - a sleeping site wakes on its first HTTPS request.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, startServer, freePort, apiUser, waitRunning, launch, hydrated, ARTIFACTS } from './helpers.mjs';

const sleep = ms => new Promise(r => setTimeout(r, ms));
const VALIDITY = 90; // seconds: renewal comes at two thirds (60 s)
let server, dns, acme, dnsDir, acmeDir, pebbleRoot;

/** `KEY=VALUE` lines a test script printed. */
function parseEnv(text) {
  return Object.fromEntries(text.split('\n').map(l => l.match(/^([A-Z0-9_]+)=(.*)$/)).filter(Boolean).map(m => [m[1], m[2].replace(/^'|'$/g, '')]));
}

const zone = name => `$TTL 60
@ IN SOA ns.${name}. admin.${name}. 1 60 60 600 60
@ IN NS ns.${name}.
ns IN A 127.0.0.1
@ IN A 127.0.0.1
`;

function nsupdate(lines) {
  const [host, port] = dns.DNS_SERVER.split(':');
  const input = [`server ${host} ${port}`, ...lines, 'send', ''].join('\n');
  execFileSync('nsupdate', ['-k', dns.DNS_TSIG_KEY], { input });
}

/** curl over HTTPS to `name` on nginx's TLS port, trusting only Pebble's root. */
function https(name, path = '/', extra = []) {
  const r = spawnSync('curl', ['-sS', '--max-time', '60', '--resolve', `${name}:${server.tlsPort}:127.0.0.1`, '--cacert', pebbleRoot,
    '-o', '-', '-w', '\n%{http_code}', ...extra, `https://${name}:${server.tlsPort}${path}`], { encoding: 'utf8' });
  const out = r.stdout || '';
  const i = out.lastIndexOf('\n');
  return { code: Number(out.slice(i + 1)) || 0, body: out.slice(0, i), err: r.stderr };
}

/** The leaf certificate nginx serves for `name` (its serial). */
function servedSerial(name) {
  const r = spawnSync('bash', ['-c', `openssl s_client -connect 127.0.0.1:${server.tlsPort} -servername ${name} </dev/null 2>/dev/null | openssl x509 -noout -serial`], { encoding: 'utf8' });
  return r.stdout.trim();
}

before(async () => {
  dnsDir = mkdtempSync(join(tmpdir(), 'vmw-dns-'));
  writeFileSync(join(dnsDir, 'sites.zone'), zone('sites.test') + '* IN A 127.0.0.1\n');
  writeFileSync(join(dnsDir, 'example.zone'), zone('example.test'));
  dns = parseEnv(execFileSync(join(ROOT, 'ops/test-dns.sh'), ['start', dnsDir, `sites.test=${join(dnsDir, 'sites.zone')}`, `example.test=${join(dnsDir, 'example.zone')}`], {
    // Pebble asks it for www.example.test's address: it follows the CNAME into sites.test.
    encoding: 'utf8', env: { ...process.env, DNS_RECURSIVE: '1' },
  }));
  const nginxPort = await freePort();
  acmeDir = mkdtempSync(join(tmpdir(), 'vmw-acme-'));
  acme = parseEnv(execFileSync(join(ROOT, 'ops/test-acme.sh'), ['start', acmeDir], {
    encoding: 'utf8', env: { ...process.env, PEBBLE_HTTP_PORT: String(nginxPort), PEBBLE_DNS: dns.DNS_SERVER, PEBBLE_VALIDITY_SECS: String(VALIDITY) },
  }));
  pebbleRoot = join(acmeDir, 'issuing-root.pem');
  writeFileSync(pebbleRoot, execFileSync('curl', ['-sSf', '--cacert', acme.PEBBLE_CA, `${acme.PEBBLE_MGMT}/roots/0`], { encoding: 'utf8' }));
  server = await startServer({
    hosting: true, nginxPort, args: [
      '--base-domain', 'sites.test', '--acme-directory', acme.PEBBLE_DIRECTORY, '--acme-ca-root', acme.PEBBLE_CA,
      '--dns-update-server', dns.DNS_SERVER, '--dns-tsig-key', dns.DNS_TSIG_KEY, '--dns-resolver', dns.DNS_SERVER,
    ],
  });
});

after(async () => {
  await server?.stop();
  if (acmeDir) spawnSync(join(ROOT, 'ops/test-acme.sh'), ['stop', acmeDir], { stdio: 'inherit' });
  if (dnsDir) spawnSync(join(ROOT, 'ops/test-dns.sh'), ['stop', dnsDir], { stdio: 'inherit' });
});

test('a site on its own domains over HTTPS: wildcard by DNS-01, domains by HTTP-01, renewal, wake over HTTPS', { timeout: 900_000 }, async () => {
  const H = server.base;
  const { user: u, auth } = await apiUser(H, 'tls');
  let r;
  const json = { ...auth, 'Content-Type': 'application/json' };

  r = await fetch(`${H}/api/v1/host`, { method: 'POST', headers: json, body: JSON.stringify({}) });
  assert.equal(r.status, 202);
  const { host } = await waitRunning(H, auth);
  const slug = u.username;
  const welcome = new RegExp(`Welcome to ${slug}`);

  // The sites' wildcard, by DNS-01 through the RFC 2136 server: {slug}.sites.test over HTTPS.
  let sub;
  for (let i = 0; i < 60; i++) {
    sub = https(`${slug}.sites.test`);
    if (sub.code === 200) break;
    await sleep(1000);
  }
  assert.equal(sub.code, 200, `https://${slug}.sites.test/: ${sub.err}`);
  assert.match(sub.body, welcome);

  // The dashboard over HTTPS at its IP address (no SNI), certified by the instance's local CA;
  // a session cookie set over HTTPS is Secure, one set over plain HTTP is not.
  const localRoot = join(server.dataDir, 'tls/local-ca/root.pem');
  const login = (url, origin, extra = []) => spawnSync('curl', ['-sS', '-D', '-', '-o', '/dev/null', ...extra, '-H', `Origin: ${origin}`,
    '--data-urlencode', `login=${u.email}`, '--data-urlencode', `password=${u.password}`, `${url}/api/fn/login`], { encoding: 'utf8' }).stdout;
  const tlsBase = `https://127.0.0.1:${server.tlsPort}`;
  const overTls = login(tlsBase, tlsBase, ['--cacert', localRoot]);
  assert.match(overTls, /^set-cookie: vmw_session=[^\r\n]*; Secure/im, overTls);
  const plain = login(H, H);
  assert.match(plain, /^set-cookie: vmw_session=/im, plain);
  assert.doesNotMatch(plain, /^set-cookie: vmw_session=[^\r\n]*Secure/im);

  // www.example.test from the hosting page: added, its CNAME created, "Check now", active.
  const { browser, page, errors } = await launch();
  try {
    await page.goto(`${H}/login`);
    await page.fill('#f-login', u.email);
    await page.fill('#f-password', u.password);
    await Promise.all([page.waitForURL(/\/dashboard$/), page.click('[data-testid=login-submit]')]);
    await page.goto(`${H}/hostings/${host.id}`);
    await hydrated(page);
    await page.fill('#f-domain-name', 'www.example.test');
    await page.click('[data-testid=domain-submit]');
    const row = page.locator('[data-testid=domain][data-domain-name="www.example.test"]');
    await row.waitFor();
    assert.equal(await row.locator('[data-testid=domain-state]').getAttribute('data-state'), 'waiting_dns');
    assert.match(await row.locator('[data-testid=domain-cname]').innerText(), new RegExp(`${slug}\\.sites\\.test`));
    nsupdate(['zone example.test', `update add www.example.test. 60 CNAME ${slug}.sites.test.`]);
    const tc = Date.now();
    await row.locator('[data-testid=domain-check]').click();
    await page.locator('[data-testid=domain][data-domain-name="www.example.test"] [data-testid=domain-state][data-state=active]').waitFor({ timeout: 90_000 });
    console.log(`# www.example.test: "Check now" -> active in ${Date.now() - tc} ms`);
    await page.screenshot({ path: join(ARTIFACTS, 'domains-active.png'), fullPage: true });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
  const www = https('www.example.test');
  assert.equal(www.code, 200, www.err);
  assert.match(www.body, welcome);
  // Plain HTTP redirects to HTTPS once the name has its certificate.
  const redirect = spawnSync('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{redirect_url}', '--resolve', `www.example.test:${server.nginxPort}:127.0.0.1`,
    `http://www.example.test:${server.nginxPort}/page?x=1`], { encoding: 'utf8' }).stdout;
  assert.equal(redirect, `301 https://www.example.test:${server.tlsPort}/page?x=1`);

  // example.test (a zone apex: no CNAME) by its TXT token, through the API.
  r = await fetch(`${H}/api/v1/hostings/${host.id}/domains`, { method: 'POST', headers: json, body: JSON.stringify({ name: 'Example.TEST.' }) });
  assert.equal(r.status, 201);
  const apex = await r.json();
  assert.equal(apex.name, 'example.test');
  assert.equal(apex.verification.txt_name, '_vmw-verify.example.test');
  nsupdate(['zone example.test', `update add _vmw-verify.example.test. 60 TXT "${apex.verification.txt_value}"`]);
  r = await fetch(`${H}/api/v1/hostings/${host.id}/domains/${apex.id}/check`, { method: 'POST', headers: auth });
  assert.equal(r.status, 202);
  let d;
  for (let i = 0; i < 90; i++) {
    d = (await (await fetch(`${H}/api/v1/hostings/${host.id}/domains`, { headers: auth })).json()).find(x => x.id === apex.id);
    if (d.state === 'active') break;
    await sleep(1000);
  }
  assert.equal(d.state, 'active', d.last_error);
  assert.equal(d.method, 'txt');
  const ap = https('example.test');
  assert.equal(ap.code, 200, ap.err);
  assert.match(ap.body, welcome);

  // Renewal: Pebble's certificates live 90 s; the domain's is renewed at two thirds, and the
  // served certificate changes while the name keeps answering.
  const before = servedSerial('www.example.test');
  const notAfter = (await (await fetch(`${H}/api/v1/hostings/${host.id}/domains`, { headers: auth })).json()).find(x => x.name === 'www.example.test').cert_not_after;
  let renewed;
  for (let i = 0; i < 120; i++) {
    renewed = (await (await fetch(`${H}/api/v1/hostings/${host.id}/domains`, { headers: auth })).json()).find(x => x.name === 'www.example.test');
    if (renewed.cert_not_after > notAfter && servedSerial('www.example.test') !== before) break;
    await sleep(1000);
  }
  assert.ok(renewed.cert_not_after > notAfter, 'the certificate was renewed');
  assert.notEqual(servedSerial('www.example.test'), before, 'nginx serves the renewed certificate');
  assert.equal(https('www.example.test').code, 200);

  // What the operator sees: every certificate on the admin page's API (this first account
  // administers the instance), and their expiry as metrics.
  const overview = await (await fetch(`${H}/api/v1/admin/certificates`, { headers: auth })).json();
  const byLabel = Object.fromEntries(overview.certificates.map(c => [c.label, c]));
  assert.equal(byLabel.dashboard.source, 'local_ca');
  assert.equal(byLabel.sites.source, 'acme');
  assert.deepEqual(byLabel.sites.names, ['*.sites.test', 'sites.test']);
  assert.ok(overview.certificates.some(c => c.names.includes('www.example.test') && c.source === 'acme' && !c.trouble), JSON.stringify(overview));
  const metrics = await (await fetch(`http://127.0.0.1:${server.appPort}/metrics`)).text();
  assert.match(metrics, /^vmw_cert_expiry_seconds\{cert="sites"\} \d/m);

  // A sleeping site wakes on its first HTTPS request.
  r = await fetch(`${H}/api/v1/hostings/${host.id}/sleep?wait=120`, { method: 'POST', headers: auth });
  assert.equal(r.status, 202);
  assert.equal((await r.json()).state, 'sleeping');
  const tw = Date.now();
  const woke = https('www.example.test');
  console.log(`# asleep -> 200 over HTTPS in ${Date.now() - tw} ms`);
  assert.equal(woke.code, 200, woke.err);
  assert.match(woke.body, welcome);

  // Removed: the name routes nowhere again (its handshake is refused).
  const www2 = (await (await fetch(`${H}/api/v1/hostings/${host.id}/domains`, { headers: auth })).json()).find(x => x.name === 'www.example.test');
  r = await fetch(`${H}/api/v1/hostings/${host.id}/domains/${www2.id}`, { method: 'DELETE', headers: auth });
  assert.equal(r.status, 204);
  assert.notEqual(https('www.example.test').code, 200);
});
