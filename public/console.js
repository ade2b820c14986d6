// The interactive console: mounts xterm.js on every `[data-vmw-terminal=ID]` element the
// hosting page shows (it may appear and go at any time: the page is a hydrated Leptos app),
// and connects it to the console WebSocket of hosting ID. xterm.js and its fit addon come
// from npm (`make build` copies them to /pkg/xterm/) and load on first use.
//
// The connection reconnects after a drop (backoff 0.5 s doubling to 10 s, at once after
// nginx reloaded: close code 4000), but not after another tab took the console over (4001:
// a button takes it back), the site went (4004) or the session ended (4003).
(function () {
  'use strict';
  const ASSETS = '/pkg/xterm';
  let loading = null;

  function load() {
    if (loading) return loading;
    const css = document.createElement('link');
    css.rel = 'stylesheet';
    css.href = `${ASSETS}/xterm.css`;
    document.head.appendChild(css);
    const script = src => new Promise((ok, fail) => {
      const s = document.createElement('script');
      s.src = src;
      s.onload = ok;
      s.onerror = () => fail(new Error(`could not load ${src}`));
      document.head.appendChild(s);
    });
    loading = script(`${ASSETS}/xterm.js`).then(() => script(`${ASSETS}/addon-fit.js`));
    return loading;
  }

  function mount(el) {
    const id = el.dataset.vmwTerminal;
    el.vmwMounted = true;
    const screen = document.createElement('div');
    screen.style.cssText = 'position:absolute;inset:0 0 2rem 0';
    const bar = document.createElement('div');
    bar.className = 'absolute inset-x-0 bottom-0 flex h-7 items-center gap-3 px-1 text-xs text-slate-300';
    const status = document.createElement('span');
    status.dataset.testid = 'terminal-status';
    const again = document.createElement('button');
    again.type = 'button';
    again.className = 'rounded border border-slate-500 px-2 py-0.5 text-slate-100 hover:bg-slate-800';
    again.textContent = 'Use the console here';
    again.dataset.testid = 'terminal-take-back';
    again.hidden = true;
    bar.append(status, again);
    el.style.position = 'relative';
    el.append(screen, bar);

    let term, fit, ws = null, retry = null, delay = 500, gone = false, sizeTimer = null;
    const say = (state, text) => { el.dataset.state = state; status.textContent = text; };
    say('loading', 'Loading the terminal…');

    function sendSize() {
      if (ws && ws.readyState === WebSocket.OPEN) {
        ws.send(JSON.stringify({ type: 'resize', rows: term.rows, cols: term.cols }));
      }
    }

    function connect() {
      clearTimeout(retry);
      again.hidden = true;
      if (gone) return;
      const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
      const sock = new WebSocket(`${proto}//${location.host}/api/v1/hostings/${encodeURIComponent(id)}/console/ws`);
      sock.binaryType = 'arraybuffer';
      ws = sock;
      say('connecting', 'Connecting…');
      sock.onmessage = ev => {
        if (typeof ev.data !== 'string') { term.write(new Uint8Array(ev.data)); return; }
        let msg;
        try { msg = JSON.parse(ev.data); } catch { return; }
        if (msg.type !== 'status') return;
        if (msg.state === 'connected') {
          delay = 500;
          say('connected', 'Connected. Press Enter for a login prompt.');
          sendSize();
          term.focus();
        } else if (msg.state === 'waiting') {
          say('waiting', msg.reason || 'Waiting for the VM…');
        }
      };
      sock.onclose = ev => {
        if (ws !== sock) return;
        ws = null;
        if (gone) return;
        if (ev.code === 4001) {
          say('taken_over', 'Another console took over (one writer at a time).');
          again.hidden = false;
        } else if (ev.code === 4004) {
          say('gone', 'This site is gone.');
        } else if (ev.code === 4003) {
          say('signed_out', 'Your session ended: log in again to use the console.');
        } else {
          const wait = ev.code === 4000 ? 0 : delay;
          delay = Math.min(delay * 2, 10000);
          say('reconnecting', `Disconnected; reconnecting${wait ? ` in ${Math.round(wait / 100) / 10} s` : ''}…`);
          retry = setTimeout(connect, wait + (wait ? Math.random() * 250 : 0));
        }
      };
    }

    load().then(() => {
      if (gone) return;
      term = new window.Terminal({
        cursorBlink: true, fontSize: 13, scrollback: 5000,
        fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, monospace',
        theme: { background: '#000000' },
      });
      fit = new window.FitAddon.FitAddon();
      term.loadAddon(fit);
      term.open(screen);
      fit.fit();
      el.vmwTerminal = term; // for the browser tests: the whole buffer as text
      el.vmwText = () => {
        const b = term.buffer.active, out = [];
        for (let i = 0; i < b.length; i++) out.push(b.getLine(i).translateToString(true));
        return out.join('\n');
      };
      const enc = new TextEncoder();
      term.onData(d => { if (ws && ws.readyState === WebSocket.OPEN) ws.send(enc.encode(d)); });
      term.onBinary(d => {
        if (ws && ws.readyState === WebSocket.OPEN) ws.send(Uint8Array.from(d, c => c.charCodeAt(0) & 255));
      });
      // Keep the terminal fitted to its box; tell the VM the new size (debounced).
      term.onResize(() => { clearTimeout(sizeTimer); sizeTimer = setTimeout(sendSize, 300); });
      el.vmwObserver = new ResizeObserver(() => { try { fit.fit(); } catch {} });
      el.vmwObserver.observe(el);
      again.onclick = connect;
      window.addEventListener('online', el.vmwOnline = () => { if (!ws && el.dataset.state === 'reconnecting') connect(); });
      connect();
    }).catch(e => say('error', `The terminal could not load: ${e.message}`));

    // Undoes all of the above, so that the element, if the page puts it back (a re-render may
    // take a node out and insert it again), is mounted afresh by the next scan.
    el.vmwUnmount = () => {
      gone = true;
      clearTimeout(retry);
      clearTimeout(sizeTimer);
      if (ws) { const s = ws; ws = null; s.close(1000); }
      el.vmwObserver?.disconnect();
      if (el.vmwOnline) window.removeEventListener('online', el.vmwOnline);
      term?.dispose();
      screen.remove();
      bar.remove();
      delete el.vmwTerminal;
      delete el.vmwText;
      delete el.dataset.state;
      el.vmwMounted = false;
    };
  }

  const mounted = new Set();
  function scan() {
    for (const el of mounted) {
      if (!el.isConnected) { mounted.delete(el); el.vmwUnmount?.(); }
    }
    for (const el of document.querySelectorAll('[data-vmw-terminal]')) {
      if (!el.vmwMounted) { mounted.add(el); mount(el); }
    }
  }
  // The terminal's own rendering mutates the page too: look at most every 50 ms.
  let queued = false;
  const later = () => { if (!queued) { queued = true; setTimeout(() => { queued = false; scan(); }, 50); } };
  function start() {
    new MutationObserver(later).observe(document.body, { childList: true, subtree: true });
    scan();
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
