// The task manager page: list, stats, add/toggle/delete and the observability buttons of
// STACK.md §3. All DOM text is set with textContent (task titles are user input).
import { context, SpanStatusCode, trace } from '@opentelemetry/api';
import { flushTraces, startTracing, tracer } from './tracing.js';

startTracing();

const $ = (id) => document.getElementById(id);

function setStatus(text, kind) {
  const el = $('status');
  el.textContent = text;
  el.className = 'status ' + (kind || 'info');
}

/** fetch() on /api with JSON handling; the fetch instrumentation adds traceparent. */
async function api(method, path, body) {
  const init = { method, headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let data = null;
  try {
    data = await response.json();
  } catch (_) {
    data = null;
  }
  if (!response.ok) {
    const message = data && data.error ? data.error : 'HTTP ' + response.status;
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return data;
}

/** Runs `fn` inside a named user-interaction span, so its fetches share one trace. */
async function withSpan(name, fn) {
  // root: each user action starts its own trace (handlers registered while another action ran
  // would otherwise inherit that action's zone and context).
  const span = tracer().startSpan(name, { root: true, attributes: { 'app.action': name } });
  const traceId = span.spanContext().traceId;
  try {
    const result = await context.with(trace.setSpan(context.active(), span), fn);
    span.setStatus({ code: SpanStatusCode.OK });
    return { result, traceId };
  } catch (err) {
    span.recordException(err);
    span.setStatus({ code: SpanStatusCode.ERROR, message: String(err.message || err) });
    err.traceId = traceId;
    throw err;
  } finally {
    span.end();
  }
}

function renderTasks(tasks) {
  const list = $('task-list');
  list.replaceChildren();
  let completed = 0;
  for (const task of tasks) {
    if (task.completed) {
      completed += 1;
    }
    const item = document.createElement('li');
    item.className = 'task' + (task.completed ? ' done' : '');
    item.dataset.id = String(task.id);

    const text = document.createElement('div');
    text.className = 'task-text';
    const title = document.createElement('span');
    title.className = 'task-title';
    title.textContent = task.title;
    text.appendChild(title);
    if (task.description) {
      const description = document.createElement('span');
      description.className = 'task-description';
      description.textContent = task.description;
      text.appendChild(description);
    }
    const created = document.createElement('span');
    created.className = 'task-created';
    created.textContent = task.created_at;
    text.appendChild(created);

    const toggle = document.createElement('button');
    toggle.className = 'toggle';
    toggle.type = 'button';
    toggle.textContent = task.completed ? 'Undo' : 'Done';
    toggle.addEventListener('click', () => toggleTask(task));

    const remove = document.createElement('button');
    remove.className = 'delete danger';
    remove.type = 'button';
    remove.textContent = 'Delete';
    remove.addEventListener('click', () => deleteTask(task));

    item.append(text, toggle, remove);
    list.appendChild(item);
  }
  $('stat-total').textContent = String(tasks.length);
  $('stat-completed').textContent = String(completed);
  $('stat-pending').textContent = String(tasks.length - completed);
  $('empty').hidden = tasks.length !== 0;
}

async function loadTasks() {
  const data = await api('GET', '/api/tasks');
  renderTasks(data.tasks || []);
}

async function run(name, fn, describe) {
  try {
    const { result, traceId } = await withSpan(name, fn);
    setStatus(describe(result) + ' (trace ' + traceId + ')', 'ok');
  } catch (err) {
    setStatus(name + ' failed: ' + err.message + (err.traceId ? ' (trace ' + err.traceId + ')' : ''), 'error');
  }
  document.body.dataset.lastAction = name;
}

function addTask(event) {
  event.preventDefault();
  const title = $('task-title').value.trim();
  const description = $('task-description').value.trim();
  if (title === '') {
    setStatus('A title is required', 'error');
    return;
  }
  const body = { title };
  if (description !== '') {
    body.description = description;
  }
  run('add-task', async () => {
    const task = await api('POST', '/api/tasks', body);
    await loadTasks();
    return task;
  }, (task) => 'Added task #' + task.id).then(() => {
    $('task-form').reset();
  });
}

function toggleTask(task) {
  run('toggle-task', async () => {
    const updated = await api('PUT', '/api/tasks/' + task.id, { completed: !task.completed });
    await loadTasks();
    return updated;
  }, (t) => 'Task #' + t.id + (t.completed ? ' completed' : ' reopened'));
}

function deleteTask(task) {
  run('delete-task', async () => {
    await api('DELETE', '/api/tasks/' + task.id);
    await loadTasks();
    return task;
  }, (t) => 'Deleted task #' + t.id);
}

function simulateError() {
  run('simulate-error', () => api('GET', '/api/simulate-error'), () => 'No error?');
}

function simulateSlow() {
  run('simulate-slow', () => api('GET', '/api/simulate-slow?delay=2'), () => 'Slow request (2 s) done');
}

function bulkCreate() {
  run('bulk-create', async () => {
    const stamp = new Date().toISOString();
    const created = [];
    for (let i = 1; i <= 5; i += 1) {
      created.push(await api('POST', '/api/tasks', { title: 'Bulk task ' + i + ' · ' + stamp }));
    }
    await loadTasks();
    return created;
  }, (created) => 'Created ' + created.length + ' tasks');
}

function dbSmoke() {
  run('db-smoke', () => api('POST', '/api/smoke/db?ops=50&type=rw'),
    (r) => 'DB smoke: ' + r.performed.read + ' reads, ' + r.performed.write + ' writes (rolled back)');
}

/** Links to Grafana/Prometheus/Tempo on the same host name, ports from data-port attributes. */
function setLinks() {
  const host = window.location.hostname || 'localhost';
  const proto = window.location.protocol === 'https:' ? 'https:' : 'http:';
  const hostPart = host.includes(':') ? '[' + host + ']' : host;
  for (const link of document.querySelectorAll('a[data-port]')) {
    link.href = proto + '//' + hostPart + ':' + link.dataset.port + (link.dataset.path || '/');
  }
}

function init() {
  setLinks();
  $('task-form').addEventListener('submit', addTask);
  $('btn-error').addEventListener('click', simulateError);
  $('btn-slow').addEventListener('click', simulateSlow);
  $('btn-bulk').addEventListener('click', bulkCreate);
  $('btn-smoke').addEventListener('click', dbSmoke);
  $('btn-refresh').addEventListener('click', () => run('refresh', loadTasks, () => 'Refreshed'));
  loadTasks()
    .then(() => setStatus('Ready', 'info'))
    .catch((err) => setStatus('Could not load tasks: ' + err.message, 'error'))
    .finally(() => {
      document.body.dataset.ready = 'true';
    });
}

// For the browser test and for debugging from the console.
window.labTracing = { flush: flushTraces };

if (document.readyState === 'loading') {
  document.addEventListener('DOMContentLoaded', init);
} else {
  init();
}
