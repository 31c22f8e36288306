// The page's own behaviour, shared by every page (loaded in <head> from base.html):
// * the phone menu button (aria-expanded, Escape and outside clicks close it);
// * toasts: the flashed messages and #tx-status (written by wallet.js and checkout.js) sit in a
//   fixed region, visible wherever the page is scrolled; errors stay until closed, the others
//   fade after a few seconds;
// * data-confirm="question" on a form or its submit button: a <dialog> asks before the form is
//   sent (forms sent by wallet.js, data-tx-url, ask with their own confirmation);
// * a POST form is sent once: its submit buttons are disabled after the first submit and
//   enabled again when the page comes back from the browser's back-forward cache.
// window.P2PUI.confirm(question) -> Promise<boolean> is there for other scripts.
(function () {
  'use strict';

  document.documentElement.classList.add('js');

  const FADE_MS = 7000;
  const t = (text) => (window.gettext ? window.gettext(text) : text);

  // ---------------------------------------------------------------- menu

  function setUpMenu() {
    const button = document.querySelector('.menu-toggle');
    const menu = button && document.getElementById(button.getAttribute('aria-controls'));
    if (!button || !menu) return;
    const setOpen = (open) => {
      button.setAttribute('aria-expanded', String(open));
      menu.classList.toggle('open', open);
    };
    button.addEventListener('click', () => {
      const open = button.getAttribute('aria-expanded') !== 'true';
      setOpen(open);
      if (open) {
        const first = menu.querySelector('a, button, select');
        if (first) first.focus();
      }
    });
    document.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && button.getAttribute('aria-expanded') === 'true') {
        setOpen(false);
        button.focus();
      }
    });
    document.addEventListener('click', (event) => {
      if (button.getAttribute('aria-expanded') !== 'true') return;
      if (!menu.contains(event.target) && !button.contains(event.target)) setOpen(false);
    });
  }

  // ---------------------------------------------------------------- toasts

  function isError(toast) {
    return !!toast.querySelector('.error, .warning');
  }

  function scheduleFade(toast) {
    clearTimeout(toast._fade);
    if (isError(toast)) return;
    toast._fade = setTimeout(() => {
      if (toast.matches(':hover, :focus-within')) { scheduleFade(toast); return; }
      toast.classList.add('fading');
      setTimeout(() => { close(toast); }, 450);
    }, FADE_MS);
  }

  function close(toast) {
    clearTimeout(toast._fade);
    toast.classList.remove('fading');
    const status = toast.querySelector('#tx-status');
    if (status) {
      status.hidden = true;  // wallet.js shows it again with its next message
    } else {
      toast.hidden = true;
    }
  }

  function setUpToasts() {
    document.addEventListener('click', (event) => {
      const closer = event.target.closest('[data-toast-close]');
      if (closer) close(closer.closest('[data-toast]'));
    });
    document.querySelectorAll('[data-toast][data-flash]').forEach(scheduleFade);
    const status = document.getElementById('tx-status');
    if (status) {
      const toast = status.closest('[data-toast]');
      new MutationObserver(() => {
        if (status.hidden) { clearTimeout(toast._fade); return; }
        toast.classList.remove('fading');
        scheduleFade(toast);
      }).observe(status, {attributes: true, childList: true, characterData: true, subtree: true});
    }
  }

  // ---------------------------------------------------------------- confirmation

  let dialog = null;

  function confirmDialog(question) {
    if (typeof HTMLDialogElement === 'undefined') return Promise.resolve(window.confirm(question));
    if (!dialog) {
      dialog = document.createElement('dialog');
      dialog.className = 'confirm';
      dialog.setAttribute('aria-labelledby', 'confirm-question');
      dialog.innerHTML = '<form method="dialog"><p id="confirm-question"></p><div class="actions">' +
        '<button type="submit" value="cancel" data-confirm-cancel></button>' +
        '<button type="submit" value="ok" class="danger solid" data-confirm-ok></button></div></form>';
      dialog.querySelector('[data-confirm-cancel]').textContent = t('Cancel');
      dialog.querySelector('[data-confirm-ok]').textContent = t('Yes, continue');
      document.body.appendChild(dialog);
    }
    dialog.querySelector('#confirm-question').textContent = question;
    dialog.returnValue = 'cancel';
    return new Promise((resolve) => {
      dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), {once: true});
      dialog.showModal();
      dialog.querySelector('[data-confirm-cancel]').focus();
    });
  }

  function setUpForms() {
    document.addEventListener('submit', (event) => {
      const form = event.target;
      if (!(form instanceof HTMLFormElement) || event.defaultPrevented) return;
      if (form.method === 'dialog' || form.hasAttribute('data-tx-url')) return;
      const submitter = event.submitter || null;
      const question = (submitter && submitter.dataset.confirm) || form.dataset.confirm;
      if (question && form.dataset.confirmed !== '1') {
        event.preventDefault();
        confirmDialog(question).then((ok) => {
          if (!ok) return;
          form.dataset.confirmed = '1';
          if (submitter && form.requestSubmit) form.requestSubmit(submitter);
          else if (form.requestSubmit) form.requestSubmit();
          else form.submit();
        });
        return;
      }
      delete form.dataset.confirmed;
      if ((form.getAttribute('method') || 'get').toLowerCase() !== 'post') return;
      if (form.dataset.submitting === '1') { event.preventDefault(); return; }
      form.dataset.submitting = '1';
      // After this event: a button disabled now would leave its name and value out of the form.
      setTimeout(() => {
        form.querySelectorAll('button[type="submit"], button:not([type]), input[type="submit"]')
          .forEach((b) => { b.disabled = true; b.dataset.submitDisabled = '1'; });
      }, 0);
    });
    window.addEventListener('pageshow', () => {
      document.querySelectorAll('form[data-submitting]').forEach((form) => {
        delete form.dataset.submitting;
        form.querySelectorAll('[data-submit-disabled]').forEach((b) => {
          b.disabled = false;
          delete b.dataset.submitDisabled;
        });
      });
    });
  }

  window.P2PUI = {confirm: confirmDialog};

  function start() {
    setUpMenu();
    setUpToasts();
    setUpForms();
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
