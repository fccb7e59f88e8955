// CX Lab /ges/ callback UI helpers: the browser's time zone for the filters,
// select-all, confirmations, the scheduled-create slot picker.
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const tzo = String(new Date().getTimezoneOffset());
  const tzField = $('tzo');
  if (tzField && tzField.value !== tzo) {
    tzField.value = tzo;
    // The first render used UTC for "Today": reload once in the browser's zone.
    const u = new URL(location.href);
    if (u.searchParams.get('tzo') !== tzo && tzo !== '0') { u.searchParams.set('tzo', tzo); location.replace(u.toString()); }
  }
  // The server renders list times at the browser's current UTC offset; a
  // time on the other side of a daylight-saving change is rewritten here by
  // the browser's own rules (times in UTC end with " UTC" and stay).
  const pad = (n) => String(n).padStart(2, '0');
  const localTimes = () => document.querySelectorAll('#cb-table time[datetime]').forEach((el) => {
    if (el.textContent.endsWith(' UTC')) return;
    const d = new Date(el.getAttribute('datetime'));
    if (Number.isNaN(d.getTime())) return;
    el.textContent = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  });
  localTimes();
  document.addEventListener('htmx:afterSwap', (e) => { if (e.detail.target.id === 'list') localTimes(); });
  document.addEventListener('change', (e) => {
    if (e.target.id === 'select-all') {
      document.querySelectorAll('#cb-table tbody input[type=checkbox]').forEach((c) => { c.checked = e.target.checked; });
    }
  });
  // The list refreshes itself every few seconds: keep the rows the user ticked.
  const boxes = () => [...document.querySelectorAll('#cb-table tbody input[name=id]')];
  let ticked = null;
  document.addEventListener('htmx:beforeSwap', (e) => {
    if (e.detail.target.id === 'list') ticked = new Set(boxes().filter((c) => c.checked).map((c) => c.value));
  });
  document.addEventListener('htmx:afterSwap', (e) => {
    if (e.detail.target.id !== 'list' || !ticked) return;
    const all = boxes();
    all.forEach((c) => { c.checked = ticked.has(c.value); });
    const sa = $('select-all');
    if (sa) sa.checked = all.length > 0 && all.every((c) => c.checked);
    ticked = null;
  });
  document.addEventListener('click', (e) => {
    const b = e.target.closest('[data-confirm]');
    if (!b) return;
    // Nothing ticked: the server says so; no question first.
    if (b.id === 'btn-cancel-selected' && !document.querySelector('input[name=id]:checked')) return;
    if (!window.confirm(b.dataset.confirm)) e.preventDefault();
  });
  const type = $('create-type');
  const svc = $('create-service');
  const date = $('create-date');
  const slot = $('create-slot');
  // slotPicker fills a slot <select> with a service's open slots on a day;
  // the latest request wins (answers may come back out of order).
  const slotPicker = (sel) => {
    let asked = 0;
    return async (service, day) => {
      const q = new URLSearchParams({ service, date: day, tzo });
      if ($('utc')?.checked) q.set('utc', '1'); // the slots read as the list does
      const mine = ++asked;
      const r = await fetch('/ges/slots?' + q.toString(), { credentials: 'same-origin' });
      const html = r.ok ? await r.text() : '<option value="">slots unavailable</option>';
      if (mine !== asked) return false;
      sel.innerHTML = html;
      return true;
    };
  };
  // Today on the lab's clock (moved ahead in a demo), in the user's zone.
  const labSkew = (Number(document.body.dataset.labNow) || Date.now()) - Date.now();
  const today = () => { const d = new Date(Date.now() + labSkew); return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`; };
  const createSlots = slot && slotPicker(slot);
  async function loadSlots() {
    if (!slot || type.value !== 'scheduled') return;
    if (!await createSlots(svc.value, date.value)) return;
    if (slot.dataset.kept) { // a failed create's choice, once
      slot.value = slot.dataset.kept;
      slot.dataset.kept = '';
    }
  }
  function toggle() {
    if (!type) return;
    $('schedule-fields').hidden = type.value !== 'scheduled';
    loadSlots();
  }
  if (date && !date.dataset.kept) date.value = today(); // where the user is, not in UTC
  if (type) {
    [type, svc, date].forEach((el) => el.addEventListener('change', toggle));
    $('utc')?.addEventListener('change', loadSlots);
    toggle();
  }
  // Recreate: immediate, or at a slot picked for the callback's service.
  const dlg = $('recreate-dialog');
  if (dlg) {
    const rtype = $('recreate-type');
    const rdate = $('recreate-date');
    const rslot = $('recreate-slot');
    const rslots = slotPicker(rslot);
    let service = '';
    const sync = () => {
      const scheduled = rtype.value === 'scheduled';
      $('recreate-schedule').hidden = !scheduled;
      rslot.disabled = !scheduled; // an immediate recreate sends no slot
      if (scheduled) rslots(service, rdate.value);
    };
    [rtype, rdate].forEach((el) => el.addEventListener('change', sync));
    $('utc')?.addEventListener('change', () => { if (dlg.open) sync(); });
    $('btn-recreate-close').addEventListener('click', () => dlg.close());
    document.addEventListener('click', (e) => {
      const b = e.target.closest('button.recreate');
      if (!b || typeof dlg.showModal !== 'function') return;
      e.preventDefault();
      service = b.dataset.service;
      const form = $('recreate-form');
      form.action = b.formAction;
      const now = document.querySelector('#list-form input[name=return]');
      if (now) form.elements.return.value = now.value;
      $('recreate-what').textContent = `A new callback to ${b.dataset.phone} on ${service}.`;
      rtype.value = 'immediate';
      rdate.value = today();
      rslot.innerHTML = '';
      sync();
      dlg.showModal();
    });
  }
  // After a create the list comes back as it is now: the filters may have
  // changed in place since the page loaded, and the list's own form (redrawn
  // with every refresh) carries them.
  $('create-form')?.addEventListener('submit', (e) => {
    const now = document.querySelector('#list-form input[name=return]');
    if (now) e.target.elements.return.value = now.value;
  });
})();
