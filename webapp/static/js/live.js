// Live updates without reloading (webapp/notifications.py, ``/notifications/poll``):
// every ~5 s while the tab is visible, the header's notification count; on a trade page,
// whether the trade changed. A changed trade page is fetched again and its main content
// replaced, unless the person is typing or has changed a field: then a small notice offers to
// reload instead. Polling pauses in a hidden tab and slows down after errors.
(function () {
  'use strict';

  const script = document.currentScript;
  const pollUrl = (script && script.dataset.pollUrl) || '/notifications/poll';
  const BASE_DELAY = 5000;
  const MAX_DELAY = 60000;
  const badge = document.querySelector('[data-notifications-count]');
  const link = document.querySelector('[data-notifications-link]');
  const tradeMark = document.querySelector('[data-live-trade]');
  const onTradePage = /^\/trades\/\d+\/?$/.test(window.location.pathname);
  let trade = onTradePage && tradeMark ?
    {id: tradeMark.dataset.liveTrade, version: tradeMark.dataset.liveVersion} : null;
  let delay = BASE_DELAY;
  let timer = null;
  let busy = false;
  let stopped = false;
  let unread = badge ? parseInt(badge.textContent, 10) || 0 : 0;
  let calmButtons = disabledButtons();

  // A polite announcement for screen readers (outside the menu, which is hidden on phones).
  const announcer = document.createElement('div');
  announcer.className = 'visually-hidden';
  announcer.setAttribute('role', 'status');
  announcer.setAttribute('aria-live', 'polite');
  announcer.dataset.liveAnnounce = '';
  document.body.appendChild(announcer);

  function announce(text) {
    announcer.textContent = '';
    window.setTimeout(() => { announcer.textContent = text; }, 50);
  }

  function showCount(count) {
    if (!badge || !link) return;
    badge.textContent = String(count);
    badge.hidden = count === 0;
    link.setAttribute('aria-label', count ?
      window.ngettext('Notifications, %(num)d unread', 'Notifications, %(num)d unread', count) :
      window.gettext('Notifications'));
    if (count > unread) {
      announce(window.ngettext('%(num)d unread notification', '%(num)d unread notifications',
                               count));
    }
    unread = count;
  }

  function main() {
    return document.querySelector('main#content');
  }

  function disabledButtons() {
    const root = main();
    return new Set(root ? Array.from(root.querySelectorAll('button:disabled')) : []);
  }

  // Typing, a changed field or an action under way: replacing the page would lose it.
  function personIsBusy() {
    const root = main();
    if (!root) return true;
    const active = document.activeElement;
    if (active && root.contains(active) &&
        (active.matches('input, textarea, select') || active.isContentEditable)) {
      return true;
    }
    for (const field of root.querySelectorAll('input, textarea, select')) {
      if (field.type === 'hidden') continue;
      if (field.type === 'checkbox' || field.type === 'radio') {
        if (field.checked !== field.defaultChecked) return true;
      } else if (field.type === 'file') {
        if (field.files && field.files.length) return true;
      } else if (field.tagName === 'SELECT') {
        for (const option of field.options) {
          if (option.selected !== option.defaultSelected) return true;
        }
      } else if (field.value !== field.defaultValue) {
        return true;
      }
    }
    for (const button of root.querySelectorAll('button:disabled')) {
      if (!calmButtons.has(button)) return true;
    }
    return false;
  }

  // A notice that stays in view (the page's toast area) until the person reloads or closes it.
  function offerReload() {
    if (document.querySelector('[data-live-stale]')) return;
    const notice = document.createElement('div');
    notice.className = 'toast live-stale';
    notice.dataset.toast = '';
    notice.dataset.liveStale = '';
    notice.setAttribute('role', 'status');
    const text = document.createElement('p');
    text.className = 'flash';
    text.textContent = window.gettext('This trade has changed.') + ' ';
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'link';
    button.textContent = window.gettext('Reload');
    button.addEventListener('click', () => window.location.reload());
    text.append(button);
    const close = document.createElement('button');
    close.type = 'button';
    close.className = 'toast-close';
    close.setAttribute('aria-label', window.gettext('Close'));
    close.textContent = '×';
    close.addEventListener('click', () => notice.remove());
    notice.append(text, close);
    const area = document.getElementById('toasts') || main();
    if (area) area.append(notice);
    announce(window.gettext('This trade has changed.'));
  }

  async function refreshTrade(version) {
    const response = await fetch(window.location.pathname + window.location.search, {
      credentials: 'same-origin',
      headers: {'Accept': 'text/html'},
      cache: 'no-store',
    });
    if (!response.ok) throw new Error('page ' + response.status);
    const html = await response.text();
    // The person may have started typing while the page was on its way.
    if (personIsBusy()) { offerReload(); return; }
    const fresh = new DOMParser().parseFromString(html, 'text/html');
    const content = fresh.querySelector('main#content');
    const root = main();
    const mark = fresh.querySelector('[data-live-trade]');
    // Not this trade's page as its participant (signed out meanwhile, an error page): keep
    // what is shown and offer a reload.
    if (!content || !root || !mark || mark.dataset.liveTrade !== String(trade.id)) {
      offerReload();
      return;
    }
    trade.version = (mark && mark.dataset.liveVersion) || version;
    root.innerHTML = content.innerHTML;
    const stale = document.querySelector('[data-live-stale]');
    if (stale) stale.remove();
    calmButtons = disabledButtons();
    const wallet = window.EscrowWallet;
    const wire = wallet && (wallet.wireActionButtons || wallet.wire);
    if (typeof wire === 'function') {
      wire(root);
    } else {
      unwired = true;  // see guardUnwiredActions
    }
    document.dispatchEvent(new CustomEvent('escrow:content-replaced', {detail: {root}}));
    root.dataset.liveUpdated = String(Date.now());
    announce(window.gettext('This trade was updated.'));
  }

  async function poll() {
    timer = null;
    if (stopped || busy || document.hidden) return;
    busy = true;
    try {
      let url = pollUrl;
      if (trade) {
        url += '?trade=' + encodeURIComponent(trade.id) + '&v=' + encodeURIComponent(trade.version);
      }
      const response = await fetch(url, {
        credentials: 'same-origin',
        headers: {'Accept': 'application/json'},
        cache: 'no-store',
      });
      if (response.status === 401) { stopped = true; return; }  // signed out elsewhere
      const body = await response.json().catch(() => null);
      if (response.status === 404 && body) {
        trade = null;  // not (or no longer) this person's trade: the count still updates
      } else if (!response.ok || !body) {
        throw new Error('poll ' + response.status);
      }
      if (typeof body.unread === 'number') showCount(body.unread);
      if (trade && body.trade && body.trade.changed) {
        if (personIsBusy()) {
          trade.version = body.trade.version;
          offerReload();
        } else {
          await refreshTrade(body.trade.version);
        }
      }
      delay = BASE_DELAY;
    } catch (error) {
      delay = Math.min(MAX_DELAY, delay * 2);
    } finally {
      busy = false;
      schedule(delay);
    }
  }

  // The wallet script binds the action buttons and forms once, when the page loads. If it
  // cannot bind the ones a live update brought, a click on one reloads the page (where they
  // work) instead of doing nothing or posting the form to the wrong place.
  let unwired = false;
  function guardUnwiredActions(event) {
    if (!unwired || !(event.target instanceof Element)) return;
    const target = event.target.closest('[data-tx-url]');
    const root = main();
    if (!target || !root || !root.contains(target)) return;
    // A form is guarded when it is submitted, a button when it is clicked.
    if ((event.type === 'submit') !== (target.tagName === 'FORM')) return;
    event.preventDefault();
    event.stopPropagation();
    window.location.reload();
  }
  document.addEventListener('click', guardUnwiredActions, true);
  document.addEventListener('submit', guardUnwiredActions, true);

  function schedule(ms) {
    if (stopped || document.hidden) return;
    if (timer) window.clearTimeout(timer);
    timer = window.setTimeout(poll, ms);
  }

  document.addEventListener('visibilitychange', () => {
    if (document.hidden) {
      if (timer) window.clearTimeout(timer);
      timer = null;
    } else {
      schedule(0);  // back in view: catch up at once
    }
  });

  if (badge || trade) schedule(trade ? 1000 : delay);
})();
