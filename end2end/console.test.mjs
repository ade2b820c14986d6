// The interactive console in a real browser against a real VM: set the console password from
// the hosting page, open the terminal, log in, run a command and see its output; a second tab
// takes the console over; after a stop and a start (save and restore) the terminal reconnects
// by itself and the logged-in shell is still there. Screenshots go to end2end/artifacts/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launch, hydrated, uniqueUser, signupAndCreate, ARTIFACTS } from './helpers.mjs';

const BOOT = 300_000; // a cold boot under TCG takes 20-40 s

let server;
before(async () => { server = await startServer({ hosting: true }); });
after(async () => { await server?.stop(); });

/** The terminal's whole buffer as text (public/console.js exposes it on the element). */
const screenText = page => page.evaluate(() => document.querySelector('[data-testid=terminal]')?.vmwText?.() || '');

async function waitForText(page, re, timeout = 60_000) {
  const until = Date.now() + timeout;
  for (;;) {
    const text = await screenText(page);
    if (re.test(text)) return text;
    if (Date.now() > until) throw new Error(`terminal never showed ${re}; it shows:\n${text.slice(-1500)}`);
    await new Promise(r => setTimeout(r, 250));
  }
}

const terminalState = (page, state, timeout = 60_000) =>
  page.waitForSelector(`[data-testid=terminal][data-state=${state}]`, { timeout });

test('log in on the console in the browser and run a command', { timeout: 900_000 }, async () => {
  const { browser, context, page, errors } = await launch();
  try {
    const u = uniqueUser('con');
    const hostingUrl = await signupAndCreate(page, server.base, u, BOOT);

    // The console is found from the top of the page.
    await page.click('[data-testid=console-link]');
    await page.waitForSelector('[data-testid=console-section]');

    // The console password, from the page: a mismatch is refused on its field, then it is set.
    const password = `pw-${Math.random().toString(36).slice(2, 10)}-console`;
    await page.fill('#f-console-password', password);
    await page.fill('#f-console-confirm', `${password}x`);
    await page.click('[data-testid=console-password-submit]');
    await page.waitForFunction(() => (document.querySelector('[data-field-error=confirm]')?.textContent || '').includes('differ'));
    await page.fill('#f-console-confirm', password);
    await page.click('[data-testid=console-password-submit]');
    await page.waitForSelector('[data-testid=console-password-set]', { timeout: 60_000 });

    // Open the terminal, log in as the login user with that password.
    await page.click('[data-testid=terminal-open]');
    await terminalState(page, 'connected');
    await page.click('[data-testid=terminal]');
    await page.keyboard.press('Enter');
    await waitForText(page, /login: *$/m);
    await page.keyboard.type('ubuntu\n');
    await waitForText(page, /Password: *$/m);
    await page.keyboard.type(`${password}\n`);
    await waitForText(page, /ubuntu@[a-z0-9-]+:~\$ *$/m, 60_000);

    // A command and its output: the marker is computed by the shell, so seeing it proves it ran.
    const marker = Math.random().toString(36).slice(2, 10);
    await page.keyboard.type(`echo hello-$((6*7))-${marker}; cat /etc/hostname\n`);
    await waitForText(page, new RegExp(`^hello-42-${marker}$`, 'm'));
    // The hostname file's line may follow the marker's on a later screen (TCG, serial line).
    await waitForText(page, new RegExp(`^hello-42-${marker}\\n${u.username}$`, 'm'), 20_000);
    // The serial line has the terminal's size (set in the guest from the browser's fit).
    const size = await page.evaluate(() => { const t = document.querySelector('[data-testid=terminal]').vmwTerminal; return `${t.rows} ${t.cols}`; });
    assert.notEqual(size, '24 80', 'the fitted terminal is not the default size');
    await page.keyboard.type('stty size\n');
    await waitForText(page, new RegExp(`^${size}$`, 'm'), 20_000);
    await page.screenshot({ path: `${ARTIFACTS}/console.png`, fullPage: true });

    // One writer: a second tab takes over, the first is told and can take it back.
    const other = await context.newPage();
    await other.goto(hostingUrl);
    await hydrated(other);
    await other.click('[data-testid=terminal-open]');
    await terminalState(other, 'connected');
    await terminalState(page, 'taken_over', 15_000);
    await other.close();
    await page.click('[data-testid=terminal-take-back]');
    await terminalState(page, 'connected');

    // Stop (the VM is saved to disk) and start (restored): the terminal waits, reconnects by
    // itself, and the shell that was logged in is still there.
    await page.click('[data-testid=action-stop]');
    await page.waitForSelector('[data-testid=state-badge][data-state=stopped]:not(:has-text("…"))', { timeout: 120_000 });
    await terminalState(page, 'waiting', 30_000);
    await page.click('[data-testid=action-start]');
    await page.waitForSelector('[data-testid=state-badge][data-state=running]:not(:has-text("…"))', { timeout: BOOT });
    await terminalState(page, 'connected');
    await page.click('[data-testid=terminal]');
    const again = Math.random().toString(36).slice(2, 10);
    await page.keyboard.type(`echo back-$((1+1))-${again}\n`);
    await waitForText(page, new RegExp(`^back-2-${again}$`, 'm'));
    assert.deepEqual(errors, [], 'no console errors');
  } finally {
    await browser.close();
  }
});
