// The gnomon web UI: a few pages over the /v1 API, routed by the URL hash.
//
// No framework and no build step: the binary embeds this file as it is.
// Every piece of data reaches the page as a text node or an attribute set
// through the DOM, never as markup, so names, outputs and error messages
// cannot inject anything.
'use strict';

(() => {
  const REFRESH_MS = 3000;
  const TOKEN_KEY = 'gnomon.token';
  // Fields a job view adds to the body the job was put with; an edit sends
  // the body back without them (the API refuses unknown fields).
  const VIEW_ONLY = ['name', 'version', 'created_at', 'updated_at', 'cursor', 'unfinished_runs', 'last_run', 'next'];

  // ---------------------------------------------------------------- DOM

  /** Make an element; children are nodes or text (null/false are skipped). */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'class') el.className = value;
      else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
      else if (key === 'value') el.value = value;
      else if (key === 'checked') el.checked = true;
      else el.setAttribute(key, value === true ? '' : String(value));
    }
    add(el, children);
    return el;
  }

  function add(el, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  /** Replace an element's children (nodes, text or arrays of them). */
  function fill(el, ...children) {
    el.replaceChildren();
    return add(el, children);
  }

  const $ = (selector, root = document) => root.querySelector(selector);
  const jobHref = (name) => '#/jobs/' + encodeURIComponent(name);
  const jobPath = (name) => '/v1/jobs/' + encodeURIComponent(name);

  // ---------------------------------------------------------------- time

  const pad = (n) => String(n).padStart(2, '0');

  function toDate(t) {
    if (t === null || t === undefined || t === '') return null;
    const d = new Date(t);
    return Number.isNaN(d.getTime()) ? null : d;
  }

  /** "3s ago", "in 2m". */
  function relative(d) {
    const s = Math.round((d.getTime() - Date.now()) / 1000);
    const a = Math.abs(s);
    let text;
    if (a < 1) return 'now';
    if (a < 90) text = a + 's';
    else if (a < 90 * 60) text = Math.round(a / 60) + 'm';
    else if (a < 36 * 3600) text = Math.round(a / 3600) + 'h';
    else text = Math.round(a / 86400) + 'd';
    return s > 0 ? 'in ' + text : text + ' ago';
  }

  /** A time in the browser's zone, with the full UTC instant on hover. */
  function time(t, withRelative = true) {
    const d = toDate(t);
    if (!d) return h('span', { class: 'muted' }, '—');
    const today = new Date();
    const sameDay = d.toDateString() === today.toDateString();
    const clock = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    const text = sameDay ? clock : `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock}`;
    return h('time', { datetime: d.toISOString(), title: d.toISOString() },
      text, withRelative ? h('span', { class: 'rel' }, ' · ' + relative(d)) : null);
  }

  /** A fire time from the API ({local, utc}), in the job's own zone. */
  function fireTime(f, withRelative = true, withOffset = true) {
    const local = String(f.local || '');
    const m = local.match(/^(\d{4}-\d\d-\d\d)T(\d\d:\d\d(?::\d\d(?:\.\d+)?)?)(.*)$/);
    const text = m ? `${m[1]} ${m[2]}` : local;
    const offset = m ? (m[3] === 'Z' ? 'UTC' : m[3]) : '';
    const d = toDate(f.utc);
    return h('time', { datetime: f.utc, title: `${f.utc} (UTC)` },
      text, offset && withOffset ? h('span', { class: 'muted' }, ' ' + offset) : null,
      withRelative && d ? h('span', { class: 'rel' }, ' · ' + relative(d)) : null);
  }

  function duration(ms) {
    if (ms === null || ms === undefined) return '';
    if (ms < 1000) return ms + ' ms';
    const s = ms / 1000;
    if (s < 60) return +s.toFixed(s < 10 ? 1 : 0) + ' s';
    if (s < 3600) return +(s / 60).toFixed(1) + ' min';
    if (s < 86400) return +(s / 3600).toFixed(1) + ' h';
    return +(s / 86400).toFixed(1) + ' d';
  }

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, code, message, details) {
      super(message);
      this.status = status;
      this.code = code;
      this.details = details;
    }
  }

  let token = localStorage.getItem(TOKEN_KEY) || '';
  // Without a leader a linearizable read waits and then fails; the pages
  // read this node's own state instead (?stale=true) until one is known.
  let noLeader = false;
  let tokenAsk = null;     // the open token dialog's promise, shared by every 401
  let tokenDeclined = false;

  /** Call the API; resolves to the JSON body or throws an ApiError. */
  async function api(method, path, body) {
    if (method === 'GET' && noLeader && path !== '/v1/cluster' && !/[?&]stale=/.test(path)) {
      path += (path.includes('?') ? '&' : '?') + 'stale=true';
    }
    for (let retried = false; ; retried = true) {
      const headers = { Accept: 'application/json' };
      if (token) headers.Authorization = 'Bearer ' + token;
      const init = { method, headers, cache: 'no-store' };
      if (body !== undefined) {
        headers['Content-Type'] = 'application/json';
        init.body = typeof body === 'string' ? body : JSON.stringify(body);
      }
      let response;
      try {
        response = await fetch(path, init);
      } catch (e) {
        throw new ApiError(0, 'unreachable', `the node did not answer (${e.message})`);
      }
      const text = await response.text();
      let data = null;
      try { data = text ? JSON.parse(text) : null; } catch { data = null; }
      if (response.status === 401 && !retried && await askToken(data)) continue;
      if (!response.ok) {
        const e = data && typeof data.error === 'object' && data.error;
        if (e && e.code === 'no_leader') noLeader = true;
        if (e) throw new ApiError(response.status, e.code, e.message, e.details);
        throw new ApiError(response.status, 'http_' + response.status, text || response.statusText);
      }
      return data;
    }
  }

  /** Ask for a token after a 401: once, however many requests failed. */
  function askToken(data) {
    if (tokenDeclined) return Promise.resolve(false);
    if (!tokenAsk) {
      const said = (data && data.error && data.error.message) || 'unauthorized';
      const title = token ? 'The node refused the stored token' : 'This node needs a token';
      tokenAsk = openTokenDialog(title, said).then((given) => {
        tokenAsk = null;
        if (!given) tokenDeclined = true;
        return given;
      });
    }
    return tokenAsk;
  }

  /** Resolves to true when a token was entered, false on cancel. */
  function openTokenDialog(title, reason) {
    const dialog = $('#token-dialog');
    const input = $('#token-input');
    $('#token-title').textContent = title;
    $('#token-reason').textContent = reason;
    $('#token-forget').hidden = !token;
    input.value = token;
    return new Promise((resolve) => {
      const done = (given) => {
        $('#token-form').onsubmit = null;
        $('#token-cancel').onclick = null;
        $('#token-forget').onclick = null;
        dialog.oncancel = null;
        if (dialog.open) dialog.close();
        resolve(given);
      };
      $('#token-form').onsubmit = (ev) => {
        ev.preventDefault();
        const value = input.value.trim();
        if (!value) { input.focus(); return; }
        token = value;
        localStorage.setItem(TOKEN_KEY, token);
        tokenDeclined = false;
        done(true);
      };
      $('#token-cancel').onclick = () => done(false);
      $('#token-forget').onclick = () => {
        token = '';
        localStorage.removeItem(TOKEN_KEY);
        done(false);
      };
      dialog.oncancel = (ev) => { ev.preventDefault(); done(false); };
      dialog.showModal();
      input.focus();
    });
  }

  // ---------------------------------------------------------------- widgets

  /** An API error, shown as the API sent it. */
  function errorBox(err) {
    const status = err.status ? `HTTP ${err.status}` : 'no answer';
    return h('div', { class: 'error', role: 'alert' },
      h('span', { class: 'error-code' }, err.code || 'error'),
      h('span', { class: 'error-message' }, err.message),
      h('span', { class: 'muted small' }, ' (' + status + ')'),
      err.status === 401 ? h('button', { type: 'button', class: 'small', onclick: () => {
        tokenDeclined = false;
        openTokenDialog('This node needs a token', err.message).then((given) => given && refresh(true));
      } }, 'Enter token') : null);
  }

  function badge(state, extra) {
    return h('span', { class: `badge state-${state}`, title: extra || null }, state);
  }

  function table(headers, rows, empty) {
    if (rows.length === 0) return h('p', { class: 'empty' }, empty);
    return h('div', { class: 'table-wrap' },
      h('table', null,
        h('thead', null, h('tr', null, headers.map((x) =>
          (Array.isArray(x) ? h('th', { class: x[1] }, x[0]) : h('th', null, x))))),
        h('tbody', null, rows)));
  }

  // <details> blocks remember whether they were open across refreshes.
  const openKeys = new Set();
  function disclosure(key, summary, ...content) {
    const el = h('details', { open: openKeys.has(key) || null }, h('summary', null, summary), ...content);
    el.addEventListener('toggle', () => (el.open ? openKeys.add(key) : openKeys.delete(key)));
    return el;
  }

  // A short message after an action; stays until the next one.
  function flash(page, message, kind = 'ok') {
    fill(page.flash, message instanceof ApiError ? errorBox(message)
      : h('div', { class: 'notice ' + kind, role: 'status' }, message));
  }

  /** A button that runs `action`, disabled while it does. */
  function actionButton(label, action, attrs = {}) {
    const button = h('button', { type: 'button', class: 'small', ...attrs }, label);
    button.addEventListener('click', async () => {
      button.disabled = true;
      try { await action(); } finally { button.disabled = false; }
    });
    return button;
  }

  /** Pause or resume, trigger and edit; delete too where `onDeleted` is given. */
  function jobActions(page, job, { onDeleted, onEdit } = {}) {
    const run = (fn, message) => async () => {
      try {
        const result = await fn();
        flash(page, typeof message === 'function' ? message(result) : message);
      } catch (e) {
        flash(page, e);
      }
      await refresh(true);
    };
    return h('div', { class: 'row-actions' },
      job.enabled
        ? actionButton('Pause', run(() => api('POST', jobPath(job.name) + '/pause'), `Paused ${job.name}.`), { 'data-action': 'pause' })
        : actionButton('Resume', run(() => api('POST', jobPath(job.name) + '/resume'), `Resumed ${job.name}.`), { 'data-action': 'resume' }),
      actionButton('Trigger', run(() => api('POST', jobPath(job.name) + '/trigger'),
        (r) => `Triggered ${job.name}: run ${r && r.id ? r.id : ''} is ${r && r.state ? r.state : 'recorded'}.`), { 'data-action': 'trigger' }),
      onEdit ? actionButton('Edit', async () => onEdit(job), { 'data-action': 'edit' }) : null,
      onDeleted ? actionButton('Delete', async () => {
        if (!window.confirm(`Delete job ${job.name}? Its unfinished runs are cancelled.`)) return;
        try {
          await api('DELETE', jobPath(job.name));
          onDeleted();
        } catch (e) {
          flash(page, e);
        }
        await refresh(true);
      }, { class: 'small danger', 'data-action': 'delete' }) : null);
  }

  function targetSummary(t) {
    if (!t) return '';
    if (t.type === 'http') return h('span', { class: 'target', title: t.url }, h('b', null, t.method || 'POST'), ' ', t.url);
    if (t.type === 'shell') return h('span', { class: 'target', title: t.command }, h('b', null, 'sh'), ' ', t.command);
    return JSON.stringify(t);
  }

  function lastAttempt(run) {
    const attempts = run.attempts || [];
    return attempts.length ? attempts[attempts.length - 1] : null;
  }

  /** One line about how a run went: its reason, or its last attempt. */
  function runResult(run) {
    const a = lastAttempt(run);
    const parts = [];
    if (run.reason) parts.push(h('span', null, run.reason));
    if (a) {
      if (a.outcome) parts.push(h('span', { class: 'outcome outcome-' + a.outcome }, a.outcome));
      if (a.status !== null && a.status !== undefined) parts.push(h('span', null, 'status ' + a.status));
      if (a.error) parts.push(h('span', { class: 'muted' }, a.error));
    }
    if (run.next_attempt_at && run.state === 'retrying') parts.push(h('span', null, 'next attempt ', time(run.next_attempt_at)));
    const el = h('div', { class: 'result' }, parts.length ? parts.map((p, i) => [i ? ' · ' : '', p]) : h('span', { class: 'muted' }, '—'));
    el.title = el.textContent;
    return el;
  }

  function attemptsTable(run) {
    const rows = (run.attempts || []).map((a) => {
      const took = a.finished_at && toDate(a.finished_at) && toDate(a.started_at)
        ? duration(toDate(a.finished_at) - toDate(a.started_at)) : '';
      return h('tr', null,
        h('td', { class: 'num' }, a.n),
        h('td', null, 'node ' + a.node),
        h('td', null, time(a.started_at, false)),
        h('td', null, a.finished_at ? time(a.finished_at, false) : h('span', { class: 'muted' }, 'running')),
        h('td', null, took),
        h('td', null, a.outcome ? h('span', { class: 'outcome outcome-' + a.outcome }, a.outcome) : '—'),
        h('td', { class: 'num' }, a.status ?? '—'),
        h('td', { class: 'output-cell' },
          a.error ? h('div', { class: 'attempt-error' }, a.error) : null,
          a.output ? h('pre', { class: 'output' }, a.output) : (a.error ? null : h('span', { class: 'muted' }, 'no output'))));
    });
    return table([['#', 'num'], 'Node', 'Started', 'Finished', 'Took', 'Outcome', ['Status', 'num'], 'Error / output'], rows,
      'No attempts yet.');
  }

  /** Runs with their attempts, each expandable. */
  function runsTable(runs, { showJob = false, empty = 'No runs yet.' } = {}) {
    const rows = [];
    for (const run of runs) {
      const key = 'run:' + run.id;
      const n = (run.attempts || []).length;
      const detail = h('tr', { class: 'attempts-row', hidden: !openKeys.has(key) || null },
        h('td', { colspan: showJob ? 7 : 6 },
          h('div', { class: 'run-id muted small' }, 'run ', h('code', null, run.id),
            run.job_version !== undefined ? ` · job version ${run.job_version}` : '',
            run.missed_slots ? ` · covers ${run.missed_slots} slots up to ` : '',
            run.missed_slots ? time(run.last_slot, false) : null),
          attemptsTable(run)));
      const toggle = h('button', { type: 'button', class: 'link toggle', 'aria-expanded': String(openKeys.has(key)) },
        (openKeys.has(key) ? '▾ ' : '▸ ') + n + (n === 1 ? ' attempt' : ' attempts'));
      toggle.addEventListener('click', () => {
        const open = detail.hidden;
        detail.hidden = !open;
        if (open) openKeys.add(key); else openKeys.delete(key);
        toggle.setAttribute('aria-expanded', String(open));
        toggle.textContent = (open ? '▾ ' : '▸ ') + n + (n === 1 ? ' attempt' : ' attempts');
      });
      rows.push(h('tr', { class: 'run', 'data-run': run.id },
        showJob ? h('td', null, h('a', { href: jobHref(run.job) }, run.job)) : null,
        h('td', null, time(run.scheduled_for), run.manual ? h('span', { class: 'tag' }, 'manual') : null),
        h('td', null, time(run.fired_at, false)),
        h('td', null, badge(run.state)),
        h('td', null, toggle),
        h('td', null, run.finished_at ? time(run.finished_at) : h('span', { class: 'muted' }, '—')),
        h('td', null, runResult(run))));
      rows.push(detail);
    }
    const headers = ['Scheduled for', 'Fired', 'State', 'Attempts', 'Finished', 'Result'];
    return table(showJob ? ['Job', ...headers] : headers, rows, empty);
  }

  // ---------------------------------------------------------------- job form

  /** The body a job was put with, from its view. */
  function bodyOf(job) {
    const body = { ...job };
    for (const k of VIEW_ONLY) delete body[k];
    return body;
  }

  // Which input an API message names ("schedule: …", "target.url: …").
  const FIELD_INPUTS = [
    [/^name\b/, 'name'], [/^schedule\b/, 'schedule'], [/^timezone\b/, 'timezone'],
    [/^dialect\b/, 'dialect'], [/^dst\b/, 'dst'], [/^concurrency\b/, 'concurrency'],
    [/^misfire\b/, 'misfire'], [/^target\.url\b/, 'url'], [/^target\.method\b/, 'method'],
    [/^target\.command\b/, 'command'], [/^target\.timeout_ms\b/, 'timeout_ms'],
    [/^target\b/, 'type'], [/^retry\b/, 'backoff'],
  ];

  const select = (name, options, value) =>
    h('select', { name, id: 'f-' + name },
      options.map((o) => h('option', { value: o, selected: o === value || null }, o)));

  const field = (label, input, hint) =>
    h('label', { class: 'field' }, h('span', null, label), input, hint ? h('small', { class: 'muted' }, hint) : null);

  /** A number if the text is one, else the text itself (the API names the field). */
  function numberOrText(text) {
    const t = text.trim();
    return /^\d+$/.test(t) ? Number(t) : t;
  }

  let zoneList = null;
  function zones() {
    if (!zoneList) {
      const names = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
      zoneList = h('datalist', { id: 'zones' }, ['UTC', ...names].map((z) => h('option', { value: z })));
      document.body.append(zoneList);
    }
    return 'zones';
  }

  /**
   * The create/edit form. `job` is a job view to edit, or null to create.
   * Structured fields cover the common settings; everything else in an
   * edited body (headers, labels, thresholds) is kept as it was. "Edit as
   * JSON" sends the text as typed.
   */
  function jobForm(job, { onSaved, onCancel }) {
    const base = job ? bodyOf(job) : {};
    const t = base.target || { type: 'http', method: 'POST' };
    const editing = Boolean(job);
    // A new job starts with the API's default tiers, so an empty field can mean one attempt.
    const backoff = base.retry && Array.isArray(base.retry.backoff_ms) ? base.retry.backoff_ms.join(', ')
      : job ? '' : '0, 300000, 3600000, 86400000';

    const f = {
      name: h('input', { name: 'name', id: 'f-name', value: job ? job.name : '', required: true, disabled: editing || null,
        placeholder: 'nightly-report', autocomplete: 'off', spellcheck: 'false' }),
      schedule: h('input', { name: 'schedule', id: 'f-schedule', value: base.schedule || '', placeholder: '0 30 2 * * *',
        autocomplete: 'off', spellcheck: 'false', class: 'mono' }),
      timezone: h('input', { name: 'timezone', id: 'f-timezone', value: base.timezone || 'UTC', list: zones(),
        autocomplete: 'off', spellcheck: 'false' }),
      dialect: select('dialect', ['cron', 'quartz'], base.dialect || 'cron'),
      dst: select('dst', ['once', 'literal'], base.dst || 'once'),
      concurrency: select('concurrency', ['forbid', 'allow', 'replace'], base.concurrency || 'forbid'),
      misfire: select('misfire', ['run_once', 'skip', 'run_all'], base.misfire || 'run_once'),
      type: select('type', ['http', 'shell'], t.type),
      method: select('method', ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD'], (t.method || 'POST').toUpperCase()),
      url: h('input', { name: 'url', id: 'f-url', value: t.url || '', placeholder: 'http://127.0.0.1:9000/hook',
        autocomplete: 'off', spellcheck: 'false', class: 'mono' }),
      command: h('input', { name: 'command', id: 'f-command', value: t.command || '', placeholder: '/usr/local/bin/backup --quick',
        autocomplete: 'off', spellcheck: 'false', class: 'mono' }),
      timeout_ms: h('input', { name: 'timeout_ms', id: 'f-timeout_ms', value: t.timeout_ms ?? '', placeholder: 'default',
        inputmode: 'numeric', autocomplete: 'off' }),
      backoff: h('input', { name: 'backoff', id: 'f-backoff', value: backoff, placeholder: 'none: one attempt',
        autocomplete: 'off', spellcheck: 'false', class: 'mono' }),
      enabled: h('input', { type: 'checkbox', name: 'enabled', id: 'f-enabled', checked: base.enabled !== false || null }),
    };
    const json = h('textarea', { name: 'json', id: 'f-json', rows: 18, spellcheck: 'false', class: 'mono' });
    const preview = h('pre', { class: 'body-preview' });
    const schedulePreview = h('div', { class: 'schedule-preview', 'aria-live': 'polite' });
    const error = h('div', { class: 'form-error', id: 'job-form-error' });
    const methodField = field('Method', f.method);
    const urlField = field('URL', f.url);
    const commandField = field('Command', f.command, 'needs a node started with --allow-shell');
    let jsonMode = false;

    /** The body the structured fields describe, over the edited job's body. */
    function build() {
      const body = { ...base };
      body.schedule = f.schedule.value.trim();
      body.timezone = f.timezone.value.trim() || 'UTC';
      body.dialect = f.dialect.value;
      body.dst = f.dst.value;
      body.concurrency = f.concurrency.value;
      body.misfire = f.misfire.value;
      body.enabled = f.enabled.checked;
      const type = f.type.value;
      const target = type === t.type ? { ...t } : { type };
      if (type === 'http') {
        target.url = f.url.value.trim();
        target.method = f.method.value;
      } else {
        target.command = f.command.value;
      }
      const timeout = f.timeout_ms.value.trim();
      if (timeout) target.timeout_ms = numberOrText(timeout); else delete target.timeout_ms;
      body.target = target;
      const tiers = f.backoff.value.trim();
      body.retry = { ...(base.retry || {}), backoff_ms: tiers ? tiers.split(/[\s,]+/).filter(Boolean).map(numberOrText) : [] };
      return body;
    }

    function sync() {
      const http = f.type.value === 'http';
      methodField.hidden = !http;
      urlField.hidden = !http;
      commandField.hidden = http;
      preview.textContent = JSON.stringify(build(), null, 2);
    }

    // Describe the schedule as it is typed, through POST /v1/cron/validate.
    let previewTimer = null;
    let previewSeq = 0;
    function previewSchedule() {
      clearTimeout(previewTimer);
      previewTimer = setTimeout(async () => {
        const seq = ++previewSeq;
        const expr = f.schedule.value.trim();
        if (!expr) { fill(schedulePreview); return; }
        try {
          const v = await api('POST', '/v1/cron/validate', {
            expr, timezone: f.timezone.value.trim() || 'UTC', dialect: f.dialect.value, dst: f.dst.value, count: 3,
          });
          if (seq !== previewSeq) return;
          fill(schedulePreview,
            h('div', null, h('span', { class: 'ok-mark' }, '✓ '), v.description || v.normalized),
            h('div', { class: 'muted small' }, 'next: ', (v.next || []).map((x, i) => [i ? ', ' : '', fireTime(x, false)])),
            (v.warnings || []).map((w) => h('div', { class: 'warn small' }, '⚠ ', w.message)));
        } catch (e) {
          if (seq !== previewSeq) return;
          // The validate route names the expression `expr`; here it is the schedule.
          fill(schedulePreview, h('div', { class: 'bad-mark' }, '✗ ', String(e.message).replace(/^expr: /, '')));
        }
      }, 350);
    }

    const toggleJson = h('button', { type: 'button', class: 'link' }, 'Edit as JSON');
    const structured = h('div', { class: 'structured' },
      h('div', { class: 'grid' },
        field('Schedule', f.schedule, '5, 6 (seconds first) or 7 fields; @daily, @every 90s'),
        field('Time zone', f.timezone)),
      schedulePreview,
      h('div', { class: 'grid' },
        field('Dialect', f.dialect), field('Daylight saving', f.dst),
        field('Overlap', f.concurrency), field('Misfire', f.misfire)),
      h('div', { class: 'grid target-grid' },
        field('Target', f.type), methodField, urlField, commandField,
        field('Timeout (ms)', f.timeout_ms, 'empty: the default')),
      h('div', { class: 'grid half' },
        field('Retry delays (ms)', f.backoff, 'before attempt 2, 3, …; empty: one attempt')),
      disclosure('form-preview', 'Request body', preview));
    const raw = h('div', { class: 'raw', hidden: true },
      field('Body', json, 'sent as typed: PUT /v1/jobs/NAME'));
    toggleJson.addEventListener('click', () => {
      jsonMode = !jsonMode;
      if (jsonMode) json.value = JSON.stringify(build(), null, 2);
      structured.hidden = jsonMode;
      raw.hidden = !jsonMode;
      toggleJson.textContent = jsonMode ? 'Edit as form' : 'Edit as JSON';
    });

    const submit = h('button', { type: 'submit', class: 'primary' }, editing ? 'Save' : 'Create job');
    const form = h('form', { class: 'panel job-form', id: 'job-form', novalidate: true },
      h('div', { class: 'panel-head' },
        h('h2', null, editing ? `Edit ${job.name}` : 'New job'),
        h('span', { class: 'spacer' }), toggleJson),
      h('div', { class: 'grid name-grid' },
        field('Name', f.name, editing ? 'a job keeps its name' : '1–200 of A–Z a–z 0–9 . _ : / -'),
        h('label', { class: 'field check' }, f.enabled, h('span', null, 'Enabled'))),
      structured, raw, error,
      h('div', { class: 'actions' },
        h('span', { class: 'spacer' }),
        h('button', { type: 'button', onclick: () => onCancel() }, 'Cancel'),
        submit));

    form.addEventListener('input', (ev) => {
      sync();
      if ([f.schedule, f.timezone, f.dialect, f.dst].includes(ev.target)) previewSchedule();
    });
    form.addEventListener('change', sync);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
      fill(error);
      const name = f.name.value.trim();
      if (!name) {
        fill(error, h('div', { class: 'error', role: 'alert' }, h('span', { class: 'error-message' }, 'name: required')));
        f.name.setAttribute('aria-invalid', 'true');
        f.name.focus();
        return;
      }
      submit.disabled = true;
      try {
        const saved = await api('PUT', jobPath(name), jsonMode ? json.value : build());
        onSaved(saved, !editing);
      } catch (e) {
        fill(error, errorBox(e));
        // The API names the field in `details.field` (and at the start of the message).
        const named = (e.details && e.details.field) || e.message || '';
        const hit = FIELD_INPUTS.find(([re]) => re.test(named));
        if (hit && !jsonMode) {
          f[hit[1]].setAttribute('aria-invalid', 'true');
          f[hit[1]].focus();
        }
      } finally {
        submit.disabled = false;
      }
    });
    sync();
    if (f.schedule.value) previewSchedule();
    return form;
  }

  // ---------------------------------------------------------------- pages

  /**
   * A page: a fixed part (heading, forms) and a data part that each refresh
   * replaces. `load` fetches and fills the data part; an API error it
   * throws is shown above that part until a load succeeds.
   */
  function page(title, { actions, load }) {
    const p = {
      el: null,
      data: h('div', { class: 'data' }, h('p', { class: 'muted loading' }, 'Loading…')),
      flash: h('div', { class: 'flash' }),
      slot: h('div', { class: 'slot' }),
      problem: h('div', { class: 'problem' }),
      load: null,
    };
    p.heading = h('h1', null, title);
    p.el = h('section', { class: 'page' },
      h('div', { class: 'page-head' }, p.heading, h('span', { class: 'spacer' }), actions ? actions(p) : null),
      p.flash, p.slot, p.problem, p.data);
    // A failed reload keeps what the page showed last, under the error.
    p.load = async () => {
      try {
        await load(p);
        fill(p.problem);
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        fill(p.problem, errorBox(e));
      }
    };
    return p;
  }

  function clusterPage() {
    return page('Cluster', {
      load: async (p) => {
        const [c, ready] = await Promise.all([api('GET', '/v1/cluster'), readiness()]);
        const stat = (label, value, cls) => h('div', { class: 'stat ' + (cls || '') },
          h('div', { class: 'stat-label' }, label), h('div', { class: 'stat-value' }, value));
        const rows = c.members.map((m) => h('tr', { 'data-node': m.id },
          h('td', null, m.id),
          h('td', { class: 'mono' }, m.addr),
          h('td', null, m.voter ? h('span', { class: 'badge role-voter' }, 'voter') : h('span', { class: 'badge role-learner' }, 'learner')),
          h('td', null, m.reachable ? h('span', { class: 'badge ok' }, 'reachable') : h('span', { class: 'badge bad' }, 'unreachable')),
          h('td', null,
            m.id === c.leader_id ? h('span', { class: 'tag leader' }, 'leader') : null,
            m.id === c.node_id ? h('span', { class: 'tag' }, 'this node') : null)));
        fill(p.data,
          h('div', { class: 'stats' },
            stat('Leader', c.leader_id === null || c.leader_id === undefined ? 'none' : 'node ' + c.leader_id,
              c.leader_id === null || c.leader_id === undefined ? 'bad' : ''),
            stat('Term', c.term),
            stat('Commit index', c.commit_index),
            stat('Applied index', c.applied_index, c.applied_index < c.commit_index ? 'warn' : ''),
            stat('This node', `node ${c.node_id} · ${ready ? 'ready' : 'not ready'}`, ready ? '' : 'bad')),
          h('h2', null, 'Members'),
          table(['Id', 'Address', 'Role', 'Reachable', ''], rows, 'No members.'),
          h('p', { class: 'muted small' }, `Snapshot index ${c.snapshot_index ?? '—'} · purged up to ${c.purged_index ?? '—'}. ` +
            'Reachability is as the leader sees it; any node answers any request.'));
      },
    });
  }

  async function readiness() {
    try {
      return (await fetch('/readyz', { cache: 'no-store' })).ok;
    } catch {
      return false;
    }
  }

  function jobsPage() {
    const openForm = (p, job) => {
      fill(p.slot, jobForm(job, {
        onSaved: (saved, created) => {
          fill(p.slot);
          flash(p, `${created ? 'Created' : 'Saved'} ${saved.name}.`);
          refresh(true);
        },
        onCancel: () => fill(p.slot),
      }));
      $(job ? '#f-schedule' : '#f-name', p.slot).focus();
    };
    return page('Jobs', {
      actions: (p) => h('button', { type: 'button', class: 'primary', id: 'new-job', onclick: () => openForm(p, null) }, 'New job'),
      load: async (p) => {
        const { jobs } = await api('GET', '/v1/jobs');
        fill(p.heading, 'Jobs ', h('span', { class: 'count' }, jobs.length));
        const rows = jobs.map((job) => {
          const run = job.last_run;
          const next = (job.next || [])[0];
          return h('tr', { 'data-job': job.name },
            h('td', null, h('a', { href: jobHref(job.name), class: 'job-name' }, job.name)),
            h('td', { class: 'schedule-cell' }, h('code', null, job.schedule),
              h('div', { class: 'muted small' }, job.timezone || 'UTC', job.dialect === 'quartz' ? ' · quartz' : '')),
            h('td', { class: 'target-cell' }, targetSummary(job.target)),
            h('td', { class: 'state' }, job.enabled ? h('span', { class: 'badge enabled' }, 'active') : h('span', { class: 'badge paused' }, 'paused')),
            h('td', { class: 'next-fire' }, next
              ? [fireTime(next, false, false), h('div', { class: 'muted small' }, toDate(next.utc) ? relative(toDate(next.utc)) : '')]
              : h('span', { class: 'muted' }, job.enabled ? '—' : 'paused')),
            h('td', { class: 'last-run' }, run
              ? [h('a', { href: jobHref(job.name) }, badge(run.state)), h('div', { class: 'muted small' }, time(run.scheduled_for))]
              : h('span', { class: 'muted' }, 'none yet')),
            h('td', null, jobActions(p, job, { onEdit: (j) => openForm(p, j) })));
        });
        fill(p.data, table(['Name', 'Schedule', 'Target', 'State', 'Next fire', 'Last run', ''], rows,
          'No jobs yet. Create one with “New job”, or PUT /v1/jobs/NAME.'));
      },
    });
  }

  function jobPage(name) {
    let limit = 20;
    const limitSelect = h('select', { id: 'runs-limit', 'aria-label': 'Runs to show' },
      [20, 50, 100].map((n) => h('option', { value: n }, `last ${n}`)));
    limitSelect.addEventListener('change', () => { limit = Number(limitSelect.value); refresh(true); });
    return page(name, {
      load: async (p) => {
        const [job, runs] = await Promise.all([
          api('GET', jobPath(name)),
          api('GET', jobPath(name) + '/runs?limit=' + limit),
        ]);
        const openForm = (j) => {
          fill(p.slot, jobForm(j, {
            onSaved: () => { fill(p.slot); flash(p, `Saved ${name}.`); refresh(true); },
            onCancel: () => fill(p.slot),
          }));
          $('#f-schedule', p.slot).focus();
        };
        fill(p.heading, h('a', { href: '#/jobs', class: 'back' }, 'Jobs'), ' / ', name, ' ',
          job.enabled ? h('span', { class: 'badge enabled' }, 'active') : h('span', { class: 'badge paused' }, 'paused'));
        const t = job.target || {};
        const def = [
          ['Schedule', [h('code', null, job.schedule), ' ', h('span', { class: 'muted' }, `(${job.dialect || 'cron'})`)]],
          ['Time zone', job.timezone],
          ['Daylight saving', job.dst],
          ['Target', targetSummary(t)],
          t.type === 'http' && t.headers && Object.keys(t.headers).length
            ? ['Headers', Object.entries(t.headers).map(([k, v]) => h('div', { class: 'mono small' }, `${k}: ${v}`))] : null,
          t.type === 'http' && t.body ? ['Request body', h('pre', { class: 'output' }, t.body)] : null,
          ['Timeout', duration(t.timeout_ms)],
          ['Overlap', job.concurrency],
          ['Misfire', `${job.misfire} · late up to ${duration(job.misfire_threshold_ms)}` +
            (job.misfire === 'run_all' ? ` · catch up ${duration(job.catchup_window_ms)}` : '')],
          ['Retries', job.retry && job.retry.backoff_ms && job.retry.backoff_ms.length
            ? job.retry.backoff_ms.map((d) => (d ? 'after ' + duration(d) : 'at once')).join(', ')
            : 'none (one attempt)'],
          job.labels && Object.keys(job.labels).length
            ? ['Labels', Object.entries(job.labels).map(([k, v]) => h('span', { class: 'tag' }, `${k}=${v}`))] : null,
          ['History kept', `${job.history_limit} runs`],
          ['Version', `${job.version} · created `, time(job.created_at), ' · updated ', time(job.updated_at)],
          ['Cursor', time(job.cursor)],
          ['Unfinished runs', (job.unfinished_runs || []).length
            ? job.unfinished_runs.map((id) => h('div', null, h('code', null, id)))
            : h('span', { class: 'muted' }, 'none')],
        ].filter(Boolean);
        const nextList = (job.next || []).length
          ? h('ol', { class: 'next-list' }, job.next.map((x) => h('li', null, fireTime(x))))
          : h('p', { class: 'empty' }, job.enabled ? 'No fire times ahead.' : 'Paused: nothing fires until it is resumed.');
        fill(p.data,
          h('div', { class: 'toolbar' }, jobActions(p, job, {
            onEdit: openForm,
            onDeleted: () => { location.hash = '#/jobs'; },
          })),
          h('div', { class: 'two-col' },
            h('div', { class: 'panel' }, h('h2', null, 'Definition'),
              h('dl', { class: 'kv' }, def.map(([k, ...v]) => [h('dt', null, k), h('dd', null, v)])),
              disclosure('job-json:' + name, 'As JSON', h('pre', { class: 'output' }, JSON.stringify(bodyOf(job), null, 2)))),
            h('div', { class: 'panel' }, h('h2', null, 'Next fire times'),
              h('p', { class: 'muted small' }, `in ${job.timezone || 'UTC'}`), nextList)),
          h('div', { class: 'section-head' }, h('h2', null, 'Runs'), h('span', { class: 'spacer' }), limitSelect),
          runsTable(runs.runs, { empty: 'No runs yet.' }));
      },
    });
  }

  function deadPage() {
    return page('Dead runs', {
      load: async (p) => {
        const { runs } = await api('GET', '/v1/runs?state=dead&limit=100');
        fill(p.heading, 'Dead runs ', h('span', { class: 'count' }, runs.length));
        fill(p.data,
          h('p', { class: 'muted' }, 'Runs that failed their last retry, newest first. Trigger the job to run it again.'),
          runsTable(runs, { showJob: true, empty: 'No dead runs. Every run succeeded or is still retrying.' }));
      },
    });
  }

  function locksPage() {
    return page('Locks', {
      load: async (p) => {
        const { locks } = await api('GET', '/v1/locks');
        fill(p.heading, 'Locks ', h('span', { class: 'count' }, locks.length));
        const rows = locks.map((l) => h('tr', null,
          h('td', { class: 'mono' }, l.name),
          h('td', null, l.owner),
          h('td', { class: 'num' }, l.token),
          h('td', null, time(l.acquired_at_ms)),
          h('td', null, time(l.expires_at_ms))));
        fill(p.data, table(['Name', 'Owner', ['Fencing token', 'num'], 'Acquired', 'Expires'], rows,
          'No lock is held.'));
      },
    });
  }

  function queuesPage() {
    return page('Queues', {
      load: async (p) => {
        const { queues } = await api('GET', '/v1/queues');
        fill(p.heading, 'Queues ', h('span', { class: 'count' }, queues.length));
        const count = (n, cls) => h('td', { class: 'num' + (n ? ' ' + cls : ' muted') }, n);
        const rows = queues.map((q) => h('tr', null,
          h('td', { class: 'mono' }, q.name),
          count(q.ready, 'ready'), count(q.delayed, ''), count(q.leased, 'leased'), count(q.dead, 'dead')));
        fill(p.data, table(['Queue', ['Ready', 'num'], ['Delayed', 'num'], ['Leased', 'num'], ['Dead', 'num']], rows,
          'No queue has messages.'));
      },
    });
  }

  // ---------------------------------------------------------------- routing and refresh

  let current = null;
  let loading = null;
  let lastLoaded = 0;
  let loadStarted = 0;

  function route() {
    const hash = location.hash.replace(/^#\/?/, '');
    const [head, ...rest] = hash.split('/');
    let key = head || 'jobs';
    let name = '';
    try { name = decodeURIComponent(rest.join('/')); } catch { name = rest.join('/'); }
    let p;
    if (key === 'jobs' && name) {
      p = jobPage(name);
    } else {
      const pages = { cluster: clusterPage, jobs: jobsPage, dead: deadPage, locks: locksPage, queues: queuesPage };
      if (!pages[key]) key = 'jobs';
      p = pages[key]();
    }
    for (const a of document.querySelectorAll('.tabs a')) {
      if (a.dataset.page === key) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    }
    document.title = `${key === 'jobs' && name ? name : $(`.tabs a[data-page="${key}"]`).textContent} · gnomon`;
    current = p;
    fill($('#main'), p.el);
    loading = null;
    refresh();
  }

  let again = null;

  /**
   * Reload the current page's data and the header, one load at a time.
   * `force` (after a change) waits for a load under way and starts another,
   * so what it shows was read after the change.
   */
  function refresh(force = false) {
    if (loading && force) {
      again = again || loading.then(() => { again = null; return refresh(); });
      return again;
    }
    if (loading) return loading;
    const p = current;
    loadStarted = Date.now();
    // The header first: it answers at once and tells whether a leader is known.
    loading = nodeInfo().then(() => p.load()).then(() => {
      if (current === p) lastLoaded = Date.now();
    }).finally(() => { if (current === p) loading = null; });
    return loading;
  }

  async function nodeInfo() {
    const el = $('#node-info');
    try {
      const c = await api('GET', '/v1/cluster');
      noLeader = c.leader_id === null || c.leader_id === undefined;
      const leader = noLeader ? 'no leader' : `leader ${c.leader_id}`;
      const banner = $('#banner');
      banner.hidden = !noLeader;
      fill(banner, `No leader is known to node ${c.node_id}: pages show its own state, which may be stale, `
        + 'and changes wait until a leader is elected.');
      fill(el, h('span', { class: 'dot ' + (c.leader_id ? 'ok' : 'bad') }), `node ${c.node_id} · ${leader} · term ${c.term}`);
    } catch (e) {
      fill(el, h('span', { class: 'dot bad' }), e.status === 401 ? 'token needed' : 'unreachable');
    }
  }

  function tick() {
    const live = $('#live').checked;
    const busy = $('#token-dialog').open || document.hidden;
    if (live && !busy && Date.now() - lastLoaded >= REFRESH_MS - 100) refresh();
    const age = lastLoaded ? Math.round((Date.now() - lastLoaded) / 1000) : null;
    const waiting = loading && Date.now() - loadStarted > 2000;
    $('#live-label').textContent = waiting ? 'Waiting for the node…'
      : !live ? 'Paused' : age !== null && age > 5 ? `Live (${age}s old)` : 'Live';
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('#token-button').addEventListener('click', () => {
      tokenDeclined = false;
      openTokenDialog('Token', token ? 'A token is stored for this node; requests to /v1 carry it.'
        : 'No token is stored. Nodes started with --token need one for /v1.')
        .then(() => refresh(true));
    });
    $('#live').addEventListener('change', tick);
    window.addEventListener('hashchange', route);
    route();
    setInterval(tick, 1000);
  });
})();
