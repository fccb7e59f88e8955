// CX Lab customer page: books a callback through the Engagement API v3 with
// the demo API key, shows EWT and queue status, follows the callback's state
// (retrieve every second) and cancels it.
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const key = document.body.dataset.apiKey;
  const api = '/engagement/v3';
  let cbId = null;
  let pollTimer = null;

  function showError(msg) { const e = $('error'); e.textContent = msg || ''; e.hidden = !msg; }

  async function call(method, path, bodyObj) {
    const opts = { method, headers: { 'x-api-key': key, Accept: 'application/json' } };
    if (bodyObj !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(bodyObj);
    }
    let r;
    try { r = await fetch(api + path, opts); } catch (e) { throw new Error('the Engagement API is unreachable (' + e.message + ')'); }
    const j = await r.json().catch(() => ({}));
    if (!r.ok) {
      const err = new Error((j.status && j.status.message) || ('HTTP ' + r.status));
      err.status = r.status;
      err.data = j.data;
      throw err;
    }
    return j.data;
  }

  const service = () => $('service').value;

  function fmtWait(s) {
    if (s === undefined || s === null || s < 0) return 'unknown';
    if (s < 60) return s + ' s';
    return Math.round(s / 60) + ' min';
  }

  async function refreshQueue() {
    try {
      const q = await call('GET', '/callbacks/queue-status/' + encodeURIComponent(service()));
      // Without an immediate offer an EWT of 0 means "not known", not "no wait".
      const known = q.offerImmediateCallback || q.ewt > 0;
      $('ewt').textContent = known ? fmtWait(q.ewt) : 'unknown';
      $('ewt').dataset.seconds = known ? String(q.ewt) : '';
      const parts = [];
      parts.push(q.offerImmediateCallback ? 'immediate callbacks offered' : await whyNoImmediate());
      parts.push(q.offerScheduledCallback ? 'scheduled callbacks offered' : 'no scheduled callback');
      $('queue-status').textContent = parts.join(' · ');
      $('btn-now').disabled = !q.offerImmediateCallback;
      $('btn-schedule').disabled = !q.offerScheduledCallback;
    } catch (e) {
      $('queue-status').textContent = 'queue status unavailable: ' + e.message;
    }
  }

  // whyNoImmediate says why queue-status offers no immediate callback: the
  // service is closed now (open-for is 0), or no agent can take one.
  async function whyNoImmediate() {
    try {
      const o = await call('GET', '/callbacks/open-for/' + encodeURIComponent(service()));
      if (!o.openFor) return 'no immediate callback now: the service is closed (outside its business hours); pick a time below';
    } catch (e) { /* say what else it can be */ }
    return 'no immediate callback now: no agent is logged in and Ready for this service (sign one in on the softphone page, ' +
      'or run cxlab agent), or the wait would outlast today\'s opening hours; pick a time below';
  }

  const labSkew = (Number(document.body.dataset.labNow) || Date.now()) - Date.now();
  async function loadSlots() {
    const sel = $('slot');
    try {
      const a = await call('GET', '/callbacks/availability/' + encodeURIComponent(service()) + '?numberOfDays=2&maxTimeSlots=96');
      sel.textContent = '';
      // A slot already under way would be booked for at once: offer the
      // ones still ahead (on the lab's clock, which a demo moves).
      const now = Date.now() + labSkew;
      (a.slots || []).filter((s) => Date.parse(s.utcTime) > now).forEach((s) => {
        const o = document.createElement('option');
        o.value = s.utcTime;
        o.textContent = new Date(s.utcTime).toLocaleString() + ' (' + s.capacity + ' of ' + s.total + ' free)';
        sel.appendChild(o);
      });
      if (!sel.options.length) sel.innerHTML = '<option value="">no open slot in the next two days</option>';
    } catch (e) {
      sel.innerHTML = '';
      const o = document.createElement('option');
      o.value = '';
      o.textContent = 'slots unavailable: ' + e.message;
      sel.appendChild(o);
    }
  }

  let booking = false; // a create in flight: a double click books once
  async function book(desiredTime) {
    if (booking) return;
    showError('');
    // A number typed as people write it ("+1 (202) 555-0100") goes in E.164.
    let phone = $('phone').value.trim();
    if (!phone) { showError('Enter the phone number to call back.'); $('phone').focus(); return; }
    if (phone.startsWith('+')) phone = phone.replace(/[\s().-]/g, '');
    const req = { serviceName: service(), phoneNumber: phone };
    if (desiredTime) req.desiredTime = desiredTime;
    booking = true;
    try {
      const d = await call('POST', '/callbacks/create', req);
      follow(d.id);
    } catch (e) {
      let msg = 'The callback could not be booked: ' + e.message;
      if (e.status === 429 && e.data && e.data.slots) msg += ' Free slots: ' + Object.keys(e.data.slots).slice(0, 5).join(', ');
      showError(msg);
    } finally {
      booking = false;
    }
  }

  function follow(id) {
    cbId = id;
    $('cb-panel').hidden = false;
    $('cb-id').textContent = id;
    $('btn-cancel').disabled = false;
    clearInterval(pollTimer);
    pollTimer = setInterval(poll, 1000);
    poll();
  }

  async function poll() {
    if (!cbId) return;
    try {
      const cb = await call('POST', '/callbacks/retrieve', { id: cbId });
      const st = cb.callbackState || '';
      $('cb-state').textContent = st;
      $('cb-state').dataset.state = st;
      $('cb-reason').textContent = cb.callbackReason ? '(' + cb.callbackReason + ')' : '';
      $('cb-time').textContent = cb.desiredTime ? new Date(cb.desiredTime).toLocaleString() : '';
      $('cb-position').textContent = cb.positionInQueue > 0 ? String(cb.positionInQueue) : '–';
      $('cb-ewt').textContent = cb.estimatedWaitTime !== undefined ? fmtWait(cb.estimatedWaitTime) : '–';
      if (st === 'COMPLETED' || st === 'PROCESSING') $('btn-cancel').disabled = true;
      if (st === 'COMPLETED') { clearInterval(pollTimer); pollTimer = null; }
    } catch (e) {
      if (e.status === 404) { $('cb-state').textContent = 'no longer known'; clearInterval(pollTimer); return; }
      showError('Could not read the callback: ' + e.message);
    }
  }

  async function cancel() {
    if (!cbId) return;
    showError('');
    try {
      await call('POST', '/callbacks/cancel', { id: cbId });
      poll();
    } catch (e) {
      showError('The callback could not be cancelled: ' + e.message);
    }
  }

  // Enter in a field would submit the form as a GET and reload the page
  // (losing the booked callback's panel): the buttons act, not the form.
  // Enter in the phone field books a callback now, when that is offered
  // and no callback of this page is still under way.
  $('cb-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const open = cbId && $('cb-state').dataset.state !== 'COMPLETED';
    if (e.submitter == null && !open && !$('btn-now').disabled) book();
  });
  $('btn-now').addEventListener('click', () => book());
  $('btn-schedule').addEventListener('click', () => {
    const v = $('slot').value;
    if (!v) { showError('Pick a time slot first.'); return; }
    book(v);
  });
  $('btn-cancel').addEventListener('click', cancel);
  $('service').addEventListener('change', () => { refreshQueue(); loadSlots(); });
  refreshQueue();
  loadSlots();
  setInterval(refreshQueue, 5000);
})();
