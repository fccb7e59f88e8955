// CX Lab console helpers: copy buttons, confirmations, and a notice when the
// live sections can no longer refresh.
(() => {
  'use strict';
  document.addEventListener('click', async (e) => {
    const copy = e.target.closest('[data-copy]');
    if (copy) {
      const text = document.getElementById(copy.dataset.copy).textContent;
      try {
        await navigator.clipboard.writeText(text);
        copy.textContent = 'Copied';
      } catch (err) {
        const r = document.createRange();
        r.selectNodeContents(document.getElementById(copy.dataset.copy));
        const s = window.getSelection(); s.removeAllRanges(); s.addRange(r);
        copy.textContent = 'Press Ctrl+C';
      }
      setTimeout(() => { copy.textContent = 'Copy'; }, 1500);
      return;
    }
    const b = e.target.closest('[data-confirm]');
    if (b && !window.confirm(b.dataset.confirm)) e.preventDefault();
  });

  // The live sections refresh every 5 s. When the appliance stops answering
  // (stopped, restarting), say so and since when the figures date, rather
  // than leave them looking live; the next answered refresh clears it.
  let fresh = new Date();
  const live = (e) => (e.detail.elt?.id ?? '').startsWith('sec-');
  const offline = (why) => {
    const el = document.getElementById('offline');
    if (!el) return;
    el.textContent = `CX Lab ${why}: the figures below are from ${fresh.toLocaleTimeString()} and refresh once it answers again.`;
    el.hidden = false;
  };
  // A value the form's own rules refuse (a negative count) is not sent:
  // say so where it was typed, instead of leaving the old figures in silence.
  document.body.addEventListener('htmx:validation:failed', (e) => { if (e.target.reportValidity) e.target.reportValidity(); });
  document.body.addEventListener('htmx:sendError', (e) => { if (live(e)) offline('does not answer (stopped or restarting?)'); });
  document.body.addEventListener('htmx:responseError', (e) => {
    if (live(e)) offline(`answered ${e.detail.xhr.status} ${e.detail.xhr.statusText}`.trimEnd());
  });
  document.body.addEventListener('htmx:afterRequest', (e) => {
    if (!live(e) || !e.detail.successful) return;
    fresh = new Date();
    const el = document.getElementById('offline');
    if (el) el.hidden = true;
  });
})();
