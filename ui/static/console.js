// CX Lab console helpers: copy buttons and confirmations.
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
})();
