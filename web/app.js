// The web console's page: the screen (noVNC), the serial console (xterm.js), live status and power buttons.
// Everything talks to the launcher that served this page, on the same origin.
import RFB from '/vendor/novnc/core/rfb.js';
import { Terminal } from '/vendor/xterm/lib/xterm.mjs';
import { FitAddon } from '/vendor/xterm-addon-fit/lib/addon-fit.mjs';

const $ = (id) => document.getElementById(id);
const wsUrl = (path) => `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${path}`;
/** seconds of packet-rate history each port's graph shows */
const RATE_SAMPLES = 60;
const STATUS_EVERY_MS = 2000;

let lastStatus;

// --- the serial console ---------------------------------------------------------------------------------------
const term = new Terminal({ convertEol: false, fontSize: 13, scrollback: 5000, theme: { background: '#0d1014' } });
const fit = new FitAddon();
term.loadAddon(fit);
term.open($('terminal'));
fit.fit();
window.addEventListener('resize', () => fit.fit());

let serial;
function connectSerial() {
  serial = new WebSocket(wsUrl('/ws/serial'));
  serial.binaryType = 'arraybuffer';
  serial.onopen = () => ($('serial-note').textContent = 'connected: typing goes to the guest’s serial console');
  serial.onmessage = (e) => term.write(new Uint8Array(e.data));
  serial.onclose = () => {
    $('serial-note').textContent = 'serial console disconnected; reconnecting…';
    if (lastStatus?.state !== 'stopped') setTimeout(connectSerial, 2000);
  };
}
term.onData((keys) => {
  if (serial?.readyState === WebSocket.OPEN) serial.send(keys);
});

// --- the screen ---------------------------------------------------------------------------------------------------
let rfb;
function connectScreen() {
  rfb = new RFB($('screen'), wsUrl('/ws/vnc'), { wsProtocols: ['binary'], shared: true });
  rfb.scaleViewport = true;
  rfb.addEventListener('connect', () => ($('screen-note').textContent = ''));
  rfb.addEventListener('credentialsrequired', () => {
    $('vnc-login').hidden = false;
    $('vnc-password').focus();
  });
  rfb.addEventListener('disconnect', (e) => {
    $('screen-note').textContent = e.detail.clean ? 'screen disconnected' : 'screen disconnected; reconnecting…';
    if (!e.detail.clean && lastStatus?.state !== 'stopped') setTimeout(connectScreen, 3000);
  });
}
$('vnc-login').addEventListener('submit', (e) => {
  e.preventDefault();
  $('vnc-login').hidden = true;
  rfb.sendCredentials({ password: $('vnc-password').value });
});

// --- status ---------------------------------------------------------------------------------------------------
const rates = new Map(); // port name -> { last: {t, packets}, samples: [] }

function formatUptime(sec) {
  const d = Math.floor(sec / 86400), h = Math.floor((sec % 86400) / 3600), m = Math.floor((sec % 3600) / 60), s = sec % 60;
  return (d ? `${d}d ` : '') + (d || h ? `${h}h ` : '') + (d || h || m ? `${m}m ` : '') + `${s}s`;
}
function formatCount(n) {
  if (n === undefined) return '–';
  for (const [unit, size] of [['G', 1e9], ['M', 1e6], ['k', 1e3]]) if (n >= size) return `${(n / size).toFixed(1)}${unit}`;
  return String(n);
}

function showStatus(status) {
  lastStatus = status;
  document.title = `${status.name} · snabbvm`;
  $('vm-name').textContent = status.name;
  $('vm-state').textContent = status.state;
  $('vm-state').className = `state ${status.state}`;
  $('vm-uptime').textContent = formatUptime(status.uptimeSec);
  $('vm-addresses').textContent = status.addresses.length ? status.addresses.join(' ') : '–';
  // after --accel auto fell back from a broken KVM: say so, and why (the full reason on hover)
  $('vm-accel').textContent = status.accelFallback ? `${status.accel}: KVM does not work here (${status.accelFallback})` : status.accel ?? '–';
  $('vm-accel').title = status.accelFallback ? `KVM does not work on this host: ${status.accelFallback}` : '';
  $('logout').hidden = !status.login;
  if (status.screen && !rfb) connectScreen();
  if (!status.screen) $('screen-note').textContent = 'VNC is off (--vnc none), so there is no screen to show';
  showPorts(status.ports);
}

function showPorts(ports) {
  const body = $('ports').tBodies[0];
  $('ports-note').textContent = ports.length ? '' : 'no Snabb ports (give PCI addresses or vhost-user: ports after the image)';
  const now = Date.now();
  for (const port of ports) {
    let row = body.querySelector(`tr[data-port="${CSS.escape(port.name)}"]`);
    if (!row) {
      row = body.insertRow();
      row.dataset.port = port.name;
      for (let i = 0; i < 6; i++) row.insertCell();
      const graph = document.createElement('canvas');
      graph.className = 'rate';
      graph.width = 160;
      graph.height = 28;
      row.insertCell().append(graph);
    }
    const c = port.counters;
    const cells = row.cells;
    cells[0].textContent = port.name;
    cells[1].textContent = port.device;
    cells[2].textContent = port.restarts ? `${port.state} (restarts ${port.restarts})` : port.state;
    cells[3].textContent = c ? `${formatCount(c.rxPackets)} / ${formatCount(c.txPackets)}` : '–';
    cells[4].textContent = c ? `${formatCount(c.rxBytes)} / ${formatCount(c.txBytes)}` : '–';
    cells[5].textContent = c ? formatCount(c.rxDrops) : '–';
    const rate = rates.get(port.name) ?? { samples: [] };
    const packets = c ? c.rxPackets + c.txPackets : undefined;
    if (packets !== undefined && rate.last && packets >= rate.last.packets) {
      rate.samples.push((packets - rate.last.packets) / ((now - rate.last.t) / 1000));
      if (rate.samples.length > RATE_SAMPLES) rate.samples.shift();
    }
    rate.last = packets === undefined ? undefined : { t: now, packets };
    rates.set(port.name, rate);
    drawRate(cells[6].firstChild, rate.samples);
  }
}

function drawRate(canvas, samples) {
  const g = canvas.getContext('2d');
  g.clearRect(0, 0, canvas.width, canvas.height);
  if (samples.length < 2) return;
  const max = Math.max(1, ...samples);
  g.strokeStyle = '#4c9aff';
  g.beginPath();
  samples.forEach((v, i) => {
    const x = (i / (RATE_SAMPLES - 1)) * canvas.width;
    const y = canvas.height - 2 - (v / max) * (canvas.height - 4);
    i ? g.lineTo(x, y) : g.moveTo(x, y);
  });
  g.stroke();
  g.fillStyle = '#8b96a5';
  g.font = '10px sans-serif';
  g.fillText(`${formatCount(Math.round(samples.at(-1)))}/s`, 2, 10);
}

async function pollStatus() {
  try {
    const res = await fetch('/api/status');
    if (res.status === 401) return location.reload(); // the launcher restarted: log in again
    if (res.ok) showStatus(await res.json());
  } catch {
    // the launcher is gone (the VM ended)
    $('vm-state').textContent = 'unreachable';
    $('vm-state').className = 'state unreachable';
  }
  setTimeout(pollStatus, STATUS_EVERY_MS);
}

// --- power buttons ----------------------------------------------------------------------------------------------
for (const action of ['shutdown', 'reset', 'ctrl-alt-del']) {
  $(`power-${action}`).addEventListener('click', async () => {
    if (action === 'reset' && !confirm('Reset the VM? Like the reset button: nothing is saved.')) return;
    const res = await fetch(`/api/power/${action}`, { method: 'POST' });
    if (!res.ok) alert(`${action} failed: ${await res.text()}`);
  });
}

// --- start ----------------------------------------------------------------------------------------------------
connectSerial();
void pollStatus();

// for tests and the curious: the live objects
window.snabbvm = { term, get rfb() { return rfb; }, get status() { return lastStatus; } };
