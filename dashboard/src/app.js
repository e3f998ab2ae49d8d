// Frontier: optimization performance dashboard (browser side).
//
// Served by the gateway at GET /optimization/performance/dashboard; live data
// comes as Server-Sent Events read through fetch() (EventSource cannot send an
// Authorization header). See ../README.md for the event contract and the test
// hooks (document.body.dataset.*, [data-panel] cards).

import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import './style.css';

const BASE = '/optimization/performance/dashboard';
const EVENTS_URL = `${BASE}/events`;
const KEY_STORAGE = 'frontier.key';
const MAX_POINTS = 360;
const RETRY_MS = 3000;
const CHART_HEIGHT = 220;
const PALETTE = [
  '#4e9cff', '#f2a93b', '#3ecf8e', '#f25f7a', '#b48cff',
  '#2ec4d6', '#e8e05a', '#ff8a4c', '#9bd35a', '#f07ad4',
];

const $ = (id) => document.getElementById(id);
const body = document.body;

// ---------------------------------------------------------------- DOM helper

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else el.setAttribute(k, v === true ? '' : v);
    }
  }
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// ---------------------------------------------------------------- formatting

const NUM = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });
const NUM1 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });
const INT = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

function plain(v) {
  const a = Math.abs(v);
  if (a >= 1e9) return `${NUM1.format(v / 1e9)}G`;
  if (a >= 1e6) return `${NUM1.format(v / 1e6)}M`;
  if (a >= 1e4) return `${NUM1.format(v / 1e3)}k`;
  if (a >= 100) return INT.format(v);
  if (a >= 10) return NUM1.format(v);
  return NUM.format(v);
}

function formatValue(unit, v) {
  if (v == null || !Number.isFinite(v)) return '—';
  switch (unit) {
    case 'seconds': {
      const a = Math.abs(v);
      if (a === 0) return '0 ms';
      if (a < 0.001) return `${(v * 1e6).toFixed(0)} µs`;
      if (a < 1) return `${(v * 1000).toFixed(1)} ms`;
      if (a < 60) return `${v.toFixed(2)} s`;
      return `${(v / 60).toFixed(1)} min`;
    }
    case 'ratio':
      return `${(v * 100).toFixed(Math.abs(v) < 0.1 && v !== 0 ? 2 : 1)}%`;
    case 'per_second':
      return `${plain(v)}/s`;
    case 'instances':
      return INT.format(Math.round(v));
    default: // count, messages, anything unknown
      return plain(v);
  }
}

// Shorter labels for axis ticks.
function formatTick(unit, v) {
  if (v == null || !Number.isFinite(v)) return '';
  switch (unit) {
    case 'seconds': {
      const a = Math.abs(v);
      if (a === 0) return '0';
      if (a < 0.001) return `${+(v * 1e6).toFixed(1)}µs`;
      if (a < 1) return `${+(v * 1000).toFixed(1)}ms`;
      return `${+v.toFixed(2)}s`;
    }
    case 'ratio':
      return `${+(v * 100).toFixed(2)}%`;
    case 'per_second':
      return `${plain(v)}/s`;
    case 'instances':
      return INT.format(v);
    default:
      return plain(v);
  }
}

function relative(sinceMs, nowMs) {
  let s = Math.max(0, Math.round((nowMs - sinceMs) / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const hr = Math.floor(m / 60);
  if (hr < 24) return `${hr}h ${m % 60}m`;
  const d = Math.floor(hr / 24);
  return `${d}d ${hr % 24}h`;
}

function clockTime(ms) {
  return new Date(ms).toLocaleTimeString('en-GB', { hour12: false });
}

const pad2 = (n) => String(n).padStart(2, '0');

// One-line x-axis labels (uPlot's default adds a second date line that does not fit).
function timeTicks(u, splits, axisIdx, space, incr) {
  const span = u.scales.x.max - u.scales.x.min;
  return splits.map((v) => {
    const d = new Date(v * 1000);
    const hm = `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
    if (span > 86400) return `${pad2(d.getDate())}/${pad2(d.getMonth() + 1)} ${hm}`;
    if (incr >= 60) return hm;
    const hms = `${hm}:${pad2(d.getSeconds())}`;
    return incr < 1 ? `${hms}.${Math.floor(d.getMilliseconds() / 100)}` : hms;
  });
}

function num(v) {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

// ---------------------------------------------------------------- key handling

let memoryKey = null; // fallback when sessionStorage is unavailable

function storeKey(key) {
  memoryKey = key;
  try {
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
  } catch (_) { /* storage disabled: keep it in memory only */ }
}

function loadKey() {
  const hash = location.hash.startsWith('#') ? location.hash.slice(1) : '';
  if (hash) {
    const fromHash = new URLSearchParams(hash).get('key');
    if (fromHash !== null) {
      history.replaceState(history.state, '', location.pathname + location.search);
      const k = fromHash.trim();
      if (k) {
        storeKey(k);
        return k;
      }
    }
  }
  try {
    const k = sessionStorage.getItem(KEY_STORAGE);
    if (k) return k;
  } catch (_) { /* ignore */ }
  return memoryKey;
}

// ---------------------------------------------------------------- status UI

const STATE_LABEL = {
  connecting: 'Connecting',
  live: 'Live',
  unauthorized: 'Key needed',
  error: 'Error',
  reconnecting: 'Reconnecting',
};

function setState(state) {
  body.dataset.state = state;
  const pill = $('state-pill');
  pill.textContent = STATE_LABEL[state] || state;
  pill.className = `pill pill-${state}`;
}

function showBanner(text, kind = 'error') {
  const b = $('banner');
  b.textContent = text;
  b.className = `banner banner-${kind}`;
  b.hidden = false;
}

function hideBanner() {
  $('banner').hidden = true;
}

function showKeyForm(message) {
  const wrap = $('keyform-wrap');
  wrap.replaceChildren();
  const input = h('input', {
    type: 'password',
    id: 'key-input',
    placeholder: 'API key',
    autocomplete: 'off',
    spellcheck: 'false',
    'aria-label': 'API key',
  });
  const form = h('form', {
    class: 'keyform',
    onsubmit: (ev) => {
      ev.preventDefault();
      const k = input.value.trim();
      if (!k) {
        input.focus();
        return;
      }
      storeKey(k);
      wrap.hidden = true;
      wrap.replaceChildren();
      hideBanner();
      start(k);
    },
  },
  h('h2', { text: 'Connect to the gateway' }),
  h('p', { class: 'muted', text: message || 'Paste an API key to see live optimization performance data. The key is kept in this tab only (sessionStorage).' }),
  h('div', { class: 'keyform-row' }, input, h('button', { type: 'submit', class: 'button', text: 'Connect' })));
  wrap.append(form);
  wrap.hidden = false;
  $('change-key').hidden = true;
  input.focus();
}

// ---------------------------------------------------------------- panels

let layoutJson = null;
let refreshMs = 5000;
const panels = new Map(); // id -> Panel
let samples = 0;

// When the cursor is not over the chart, the legend shows the latest values.
function showLatestInLegend(u) {
  const n = u.data[0].length;
  if (u.cursor.idx == null && n) u.setLegend({ idx: n - 1 }, false);
}

class Panel {
  constructor(def, card, prev) {
    this.id = def.id;
    this.kind = def.kind === 'stat' ? 'stat' : 'timeseries';
    this.unit = def.unit || 'count';
    this.card = card;
    this.note = card.querySelector('.card-note');
    this.content = card.querySelector('.card-content');
    this.plot = null;
    this.plotNames = null;
    this.colors = new Map();
    this.xs = [];
    this.ys = new Map(); // name -> array aligned with xs
    this.stat = [];
    this.resizeQueued = false;
    // Keep the history when a reconnect sends the same panel again.
    if (prev && prev.kind === this.kind && prev.unit === this.unit) {
      this.colors = prev.colors;
      this.xs = prev.xs;
      this.ys = prev.ys;
      this.stat = prev.stat;
    }
    if (this.kind === 'timeseries') {
      this.chartEl = h('div', { class: 'chart' });
      this.content.append(this.chartEl);
      this.observer = new ResizeObserver(() => this.queueResize());
      this.observer.observe(this.content);
      if (this.xs.length) this.draw();
    } else {
      this.statEl = h('div', { class: 'stat-grid' });
      this.content.append(this.statEl);
      if (this.stat.length) this.drawStat();
    }
    this.setNote(this.xs.length || this.stat.length ? null : 'waiting for data…', 'muted');
    this.updatePoints();
  }

  destroy() {
    if (this.observer) this.observer.disconnect();
    if (this.plot) this.plot.destroy();
    this.plot = null;
  }

  color(name) {
    if (!this.colors.has(name)) this.colors.set(name, PALETTE[this.colors.size % PALETTE.length]);
    return this.colors.get(name);
  }

  setNote(text, kind) {
    if (!text) {
      this.note.hidden = true;
      this.note.textContent = '';
      return;
    }
    this.note.textContent = text;
    this.note.className = `card-note note-${kind}`;
    this.note.hidden = false;
  }

  update(p, x) {
    if (p && typeof p.error === 'string' && p.error) {
      this.card.dataset.error = '1';
      this.setNote(p.error, 'error');
      this.updatePoints();
      return;
    }
    delete this.card.dataset.error;
    const series = (p && Array.isArray(p.series) ? p.series : [])
      .filter((s) => s && typeof s.name === 'string');
    if (this.kind === 'stat') {
      this.stat = series.map((s) => ({ name: s.name, value: num(s.value) }));
      this.drawStat();
    } else {
      this.append(x, series);
      this.draw();
    }
    this.setNote(series.length ? null : 'no data yet', 'muted');
    this.updatePoints();
  }

  append(x, series) {
    const last = this.xs.length ? this.xs[this.xs.length - 1] : null;
    if (last !== null && x < last) {
      // Clock went backwards (server restart?): start over.
      this.xs = [];
      this.ys = new Map();
    }
    let idx;
    if (last !== null && x === last) {
      idx = this.xs.length - 1; // same timestamp: overwrite
    } else {
      this.xs.push(x);
      idx = this.xs.length - 1;
      for (const arr of this.ys.values()) arr.push(null);
    }
    for (const s of series) {
      let arr = this.ys.get(s.name);
      if (!arr) {
        arr = new Array(this.xs.length).fill(null);
        this.ys.set(s.name, arr);
      }
      arr[idx] = num(s.value);
    }
    const excess = this.xs.length - MAX_POINTS;
    if (excess > 0) {
      this.xs.splice(0, excess);
      for (const arr of this.ys.values()) arr.splice(0, excess);
    }
    // Series that vanished and have no point left in the window are dropped.
    for (const [name, arr] of this.ys) {
      if (arr.every((v) => v === null)) this.ys.delete(name);
    }
  }

  draw() {
    const names = [...this.ys.keys()];
    const data = [this.xs, ...names.map((n) => this.ys.get(n))];
    const same = this.plot && this.plotNames
      && this.plotNames.length === names.length
      && this.plotNames.every((n, i) => n === names[i]);
    if (same) {
      this.plot.setData(data);
    } else {
      if (this.plot) this.plot.destroy();
      this.plot = null;
      this.plotNames = names;
      if (!names.length) return;
      this.plot = new uPlot(this.options(names), data, this.chartEl);
    }
    if (this.plot) showLatestInLegend(this.plot);
  }

  options(names) {
    const unit = this.unit;
    const axisStyle = {
      stroke: '#8b96a5',
      grid: { stroke: 'rgba(139,150,165,0.12)', width: 1 },
      ticks: { stroke: 'rgba(139,150,165,0.25)', width: 1, size: 4 },
      font: '11px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
    };
    const yAxis = {
      ...axisStyle,
      size: 64,
      values: (u, splits) => splits.map((v) => formatTick(unit, v)),
    };
    if (unit === 'instances' || unit === 'count' || unit === 'messages') {
      yAxis.incrs = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4,
        1e5, 2e5, 5e5, 1e6, 2e6, 5e6, 1e7, 1e8, 1e9, 1e10];
    }
    return {
      width: this.width(),
      height: CHART_HEIGHT,
      padding: [12, 28, 0, 0], // room on the right for the last time label
      cursor: { drag: { x: false, y: false }, points: { size: 6 } },
      legend: { live: true },
      hooks: { setLegend: [showLatestInLegend] },
      scales: {
        x: { time: true },
        y: {
          range: (u, min, max) => {
            if (min == null || max == null) return [0, 1];
            let lo = Math.min(0, min);
            let hi = Math.max(max, lo);
            if (hi === lo) hi = lo + (unit === 'ratio' ? 1 : unit === 'seconds' ? 0.01 : 1);
            if (unit === 'ratio' && hi <= 1 && hi > 0.5) return [lo, 1];
            return uPlot.rangeNum(lo, hi, 0.1, true);
          },
        },
      },
      axes: [{ ...axisStyle, size: 30, space: 70, values: timeTicks }, yAxis],
      series: [
        { label: 'Time', value: (u, v) => (v == null ? '—' : clockTime(v * 1000)) },
        ...names.map((name) => ({
          label: name,
          stroke: this.color(name),
          width: 1.5,
          fill: `${this.color(name)}14`,
          spanGaps: false,
          points: { show: false },
          value: (u, v) => formatValue(unit, v),
        })),
      ],
    };
  }

  width() {
    return Math.max(200, Math.floor(this.content.clientWidth || 400));
  }

  queueResize() {
    if (this.resizeQueued) return;
    this.resizeQueued = true;
    requestAnimationFrame(() => {
      this.resizeQueued = false;
      if (!this.plot) return;
      const w = this.width();
      if (w !== this.plot.width) this.plot.setSize({ width: w, height: CHART_HEIGHT });
    });
  }

  drawStat() {
    this.statEl.replaceChildren(...this.stat.map((s) => h('div', { class: 'stat' },
      h('div', { class: 'stat-value', text: formatValue(this.unit, s.value) }),
      h('div', { class: 'stat-name' },
        swatch(this.color(s.name)),
        s.name))));
  }

  updatePoints() {
    let n = 0;
    if (this.kind === 'stat') {
      n = this.stat.length;
    } else {
      for (const arr of this.ys.values()) for (const v of arr) if (v !== null) n += 1;
    }
    this.card.dataset.points = String(n);
  }
}

// CSP (style-src 'self') forbids style attributes, but CSSOM writes are fine.
function swatch(color) {
  const el = h('span', { class: 'swatch' });
  el.style.background = color;
  return el;
}

const UNIT_LABEL = {
  seconds: 'seconds',
  ratio: 'ratio',
  count: 'count',
  per_second: 'per second',
  messages: 'messages',
  instances: 'instances',
};

function applyLayout(layout) {
  const json = JSON.stringify(layout);
  refreshMs = num(layout.refresh_ms) || refreshMs;
  if (json === layoutJson) return; // same layout after a reconnect: keep everything
  layoutJson = json;
  const prev = new Map(panels);
  for (const p of panels.values()) p.destroy();
  panels.clear();
  const root = $('sections');
  root.replaceChildren();
  const sections = Array.isArray(layout.sections) ? layout.sections : [];
  for (const section of sections) {
    const grid = h('div', { class: 'grid' });
    root.append(h('section', { class: 'section' },
      h('h2', { class: 'section-title', text: section.title || '' }),
      grid));
    for (const def of Array.isArray(section.panels) ? section.panels : []) {
      if (!def || typeof def.id !== 'string' || panels.has(def.id)) continue;
      const card = h('article', {
        class: `card card-${def.kind === 'stat' ? 'stat' : 'timeseries'}`,
        dataset: { panel: def.id, points: '0' },
      },
      h('header', { class: 'card-header' },
        h('h3', { class: 'card-title', text: def.title || def.id }),
        h('span', { class: 'unit', text: UNIT_LABEL[def.unit] || def.unit || '' })),
      h('div', { class: 'card-note', hidden: true }),
      h('div', { class: 'card-content' }));
      grid.append(card);
      panels.set(def.id, new Panel(def, card, prev.get(def.id)));
    }
  }
  if (!sections.length) root.append(h('p', { class: 'muted empty', text: 'The gateway sent an empty layout.' }));
}

function renderAlerts(alerts, nowMs) {
  const sec = $('alerts');
  const list = Array.isArray(alerts) ? alerts.filter((a) => a && typeof a === 'object') : null;
  const count = list ? list.length : 0;
  const title = h('h2', { class: 'section-title', id: 'alerts-title' }, 'Firing alerts',
    list ? h('span', { class: `count ${count ? 'count-firing' : ''}`, text: String(count) }) : null);
  let content;
  if (!list) {
    content = h('p', { class: 'alerts-empty muted', text: 'waiting for data…' });
  } else if (!count) {
    content = h('p', { class: 'alerts-empty ok', text: 'none firing' });
  } else {
    content = h('ul', { class: 'alerts' }, list.map((a) => {
      const sev = String(a.severity || 'unknown');
      const sevClass = /page|crit|error|high/i.test(sev) ? 'sev-page'
        : /warn|ticket|medium/i.test(sev) ? 'sev-warn' : 'sev-info';
      const since = num(a.since_ms);
      return h('li', { class: `alert ${sevClass}`, dataset: { alert: String(a.name || '') } },
        h('span', { class: 'sev', text: sev }),
        h('span', { class: 'alert-name', text: String(a.name || 'unnamed') }),
        h('span', { class: 'alert-summary', text: String(a.summary || '') }),
        h('span', { class: 'alert-meta' },
          a.source ? h('span', { class: 'alert-source', text: String(a.source) }) : null,
          since !== null ? h('span', {
            class: 'alert-since',
            title: new Date(since).toISOString(),
            text: `since ${relative(since, nowMs)} ago`,
          }) : null));
    }));
  }
  sec.replaceChildren(title, content);
}

function applySample(sample) {
  samples += 1;
  body.dataset.samples = String(samples);
  const atMs = num(sample.at_ms) ?? Date.now();
  $('last-sample').textContent = `last sample ${clockTime(atMs)}`;
  renderAlerts(Array.isArray(sample.alerts) ? sample.alerts : [], atMs);
  const data = sample.panels && typeof sample.panels === 'object' ? sample.panels : {};
  const x = atMs / 1000;
  for (const [id, panel] of panels) {
    if (Object.prototype.hasOwnProperty.call(data, id)) panel.update(data[id], x);
  }
}

// ---------------------------------------------------------------- SSE over fetch

// Incremental parser for the text/event-stream format.
class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buf = '';
    this.event = '';
    this.data = [];
  }

  push(text) {
    this.buf += text;
    let start = 0;
    for (;;) {
      let i = start;
      const len = this.buf.length;
      while (i < len && this.buf[i] !== '\n' && this.buf[i] !== '\r') i += 1;
      if (i >= len) break;
      // A trailing '\r' may be the first half of '\r\n': wait for more input.
      if (this.buf[i] === '\r' && i + 1 >= len) break;
      const line = this.buf.slice(start, i);
      start = i + (this.buf[i] === '\r' && this.buf[i + 1] === '\n' ? 2 : 1);
      this.line(line);
    }
    this.buf = this.buf.slice(start);
  }

  line(line) {
    if (line === '') {
      const name = this.event || 'message';
      const data = this.data.join('\n');
      const had = this.data.length > 0;
      this.event = '';
      this.data = [];
      if (had) this.onEvent(name, data);
      return;
    }
    if (line[0] === ':') return; // comment / keep-alive
    const c = line.indexOf(':');
    const field = c < 0 ? line : line.slice(0, c);
    let value = c < 0 ? '' : line.slice(c + 1);
    if (value[0] === ' ') value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
    // 'id' and 'retry' are not used by this dashboard.
  }
}

let generation = 0;
let controller = null;
let retryTimer = null;
let watchdogTimer = null;
let lastByteAt = 0;

function stop() {
  generation += 1;
  clearTimeout(retryTimer);
  retryTimer = null;
  clearInterval(watchdogTimer);
  watchdogTimer = null;
  if (controller) controller.abort();
  controller = null;
}

function scheduleRetry(key, gen, state, message) {
  if (gen !== generation) return;
  setState(state);
  showBanner(`${message} — reconnecting in ${RETRY_MS / 1000} s`, state === 'error' ? 'error' : 'warn');
  clearTimeout(retryTimer);
  retryTimer = setTimeout(() => {
    if (gen === generation) connect(key, state);
  }, RETRY_MS);
}

function handleEvent(name, data, gen) {
  if (gen !== generation) return;
  let payload;
  try {
    payload = JSON.parse(data);
  } catch (_) {
    showBanner(`Ignored a malformed "${name}" event from the gateway.`, 'warn');
    return;
  }
  if (!payload || typeof payload !== 'object') return;
  if (name === 'layout') {
    applyLayout(payload);
    setState('live');
    hideBanner();
  } else if (name === 'sample') {
    if (body.dataset.state !== 'live') setState('live');
    applySample(payload);
  }
}

async function readError(res) {
  let text = '';
  try {
    text = await res.text();
  } catch (_) { /* ignore */ }
  try {
    const j = JSON.parse(text);
    if (j && typeof j.message === 'string') return j.code ? `${j.message} (${j.code})` : j.message;
  } catch (_) { /* not JSON */ }
  return text.trim().slice(0, 300);
}

// `pending` is the state shown while this attempt is under way.
async function connect(key, pending = 'connecting') {
  stop();
  const gen = generation;
  const ctl = new AbortController();
  controller = ctl;
  setState(pending);
  let res;
  try {
    res = await fetch(EVENTS_URL, {
      headers: { Authorization: `Bearer ${key}`, Accept: 'text/event-stream' },
      cache: 'no-store',
      credentials: 'same-origin',
      signal: ctl.signal,
    });
  } catch (err) {
    if (gen !== generation) return;
    scheduleRetry(key, gen, 'reconnecting', 'Cannot reach the gateway');
    return;
  }
  if (gen !== generation) return;
  if (!res.ok) {
    const message = await readError(res);
    if (gen !== generation) return;
    const text = `HTTP ${res.status}${message ? `: ${message}` : ''}`;
    if (res.status === 401 || res.status === 403) {
      stop();
      storeKey(null);
      setState('unauthorized');
      showBanner(text, 'error');
      showKeyForm(res.status === 401
        ? 'The gateway rejected this key. Paste a valid API key.'
        : 'This key may not read optimization performance data. Paste another API key.');
      return;
    }
    scheduleRetry(key, gen, 'error', text);
    return;
  }
  if (!res.body) {
    scheduleRetry(key, gen, 'error', 'This browser cannot stream the response');
    return;
  }

  $('change-key').hidden = false;
  lastByteAt = Date.now();
  watchdogTimer = setInterval(() => {
    // No bytes at all (not even a keep-alive) for a long time: the stream is dead.
    const limit = Math.max(3 * refreshMs, 45000);
    if (Date.now() - lastByteAt > limit && gen === generation) {
      ctl.abort();
    }
  }, 5000);

  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  const parser = new SseParser((name, data) => handleEvent(name, data, gen));
  let why = 'The event stream ended';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (gen !== generation) return;
      if (done) break;
      lastByteAt = Date.now();
      parser.push(decoder.decode(value, { stream: true }));
    }
  } catch (_) {
    if (gen !== generation) return;
    why = ctl.signal.aborted ? 'The event stream went silent' : 'The event stream was interrupted';
  }
  if (gen !== generation) return;
  clearInterval(watchdogTimer);
  watchdogTimer = null;
  scheduleRetry(key, gen, 'reconnecting', why);
}

function start(key) {
  connect(key, 'connecting');
}

// ---------------------------------------------------------------- boot

function boot() {
  body.dataset.samples = '0';
  renderAlerts(null, Date.now());
  $('change-key').addEventListener('click', () => {
    stop();
    storeKey(null);
    setState('unauthorized');
    hideBanner();
    showKeyForm();
  });
  // A key pasted into the address bar of an already open page (#key=...).
  window.addEventListener('hashchange', () => {
    if (!/^#key=/.test(location.hash)) return;
    const k = loadKey();
    if (!k) return;
    $('keyform-wrap').hidden = true;
    hideBanner();
    start(k);
  });
  const key = loadKey();
  if (key) {
    start(key);
  } else {
    setState('unauthorized');
    showKeyForm();
  }
}

boot();
