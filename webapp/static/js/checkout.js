// Checkout of a listing: the quote the page showed goes with the request, the buyer reviews
// every term before any wallet prompt, and the item's hold is let go the moment the buyer
// refuses, cancels or closes the tab. Needs wallet.js (window.EscrowWallet).
(function () {
  'use strict';

  const W = window.EscrowWallet;
  if (!W) return;

  // POSTs JSON and returns {ok, status, payload} (refusals carry data the page needs).
  async function post(url, data) {
    let response;
    try {
      response = await fetch(url, {
        method: 'POST',
        headers: {'Accept': 'application/json', 'Content-Type': 'application/json',
                  'X-CSRFToken': W.csrfToken()},
        body: JSON.stringify(data || {}),
        credentials: 'same-origin',
      });
    } catch (error) {
      throw new Error(gettext('The market did not answer. Check your connection and try again.'));
    }
    let payload = {};
    try { payload = await response.json(); } catch (e) { payload = {}; }
    return {ok: response.ok, status: response.status, payload};
  }

  function percent(bps) {
    const whole = Math.floor(bps / 100), rest = bps % 100;
    return (rest ? whole + '.' + String(rest).padStart(2, '0').replace(/0$/, '') : String(whole)) + '%';
  }

  function shortAddress(address) {
    return address ? address.slice(0, 6) + '…' + address.slice(-4) : '—';
  }

  function person(who) {
    const short = shortAddress(who.address);
    return who.name ? who.name + ' (' + short + ')' : short;
  }

  // Times as the server writes them: in the visitor's zone (Almaty by default), named after
  // the time. Kazakh month names are missing from some browsers, so Kazakh dates are numeric.
  const LANG = document.documentElement.lang || 'en';
  const ZONE = document.body.dataset.timeZone || 'UTC';
  const ZONE_LABEL = document.body.dataset.zoneLabel || 'UTC';
  const LOCALES = {kk: 'kk-KZ', ru: 'ru-RU', en: 'en-GB'};
  function when(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    const options = {day: 'numeric', month: LANG === 'kk' ? '2-digit' : 'short',
      year: 'numeric', hour: '2-digit', minute: '2-digit', hour12: false};
    let text;
    try {
      text = new Intl.DateTimeFormat(LOCALES[LANG] || 'en-GB',
        Object.assign({timeZone: ZONE}, options)).format(d);
    } catch (e) { // an unknown zone: UTC
      text = new Intl.DateTimeFormat('en-GB', Object.assign({timeZone: 'UTC'}, options)).format(d);
      return text + ' UTC';
    }
    return ZONE_LABEL === 'UTC' ? text + ' UTC' : text + ' (' + ZONE_LABEL + ')';
  }

  function duration(seconds) {
    const days = Math.floor(seconds / 86400), hours = Math.floor((seconds % 86400) / 3600);
    const parts = [];
    if (days) parts.push(ngettext('%(num)s day', '%(num)s days', days));
    if (hours) parts.push(ngettext('%(num)s hour', '%(num)s hours', hours));
    const minutes = Math.round(seconds / 60);
    return parts.join(' ') || ngettext('%(num)s minute', '%(num)s minutes', minutes);
  }

  // Shows the review dialog; resolves true when the buyer chooses to pay.
  function review(dialog, r) {
    const set = (key, text) => {
      const el = dialog.querySelector('[data-review="' + key + '"]');
      if (el) el.textContent = text;
    };
    set('title', r.title);
    set('amount', r.amount_text);
    set('token', r.currency === 'ETH' ? gettext('(ether)') :
      gettext('(token %(address)s)', {address: shortAddress(r.token)}));
    set('seller', person(r.seller));
    set('arbitrator', person(r.arbitrator));
    set('arbitrator_fee', gettext('%(percent)s of the amount, only if they have to rule on a dispute',
                                  {percent: percent(r.arbitrator.fee_bps)}));
    set('platform_fee', r.platform_fee_bps ?
      gettext("%(percent)s of the seller's part, paid by the seller",
              {percent: percent(r.platform_fee_bps)}) : gettext('none'));
    set('ship_by', when(r.ship_by));
    set('delivery', r.delivery_text || '');
    set('inspection', gettext('%(duration)s from when you mark the item received, or from the end ' +
                              'of the delivery time if that comes first',
                              {duration: duration(r.inspection_seconds)}));
    set('hold_expires', when(r.hold_expires));
    const pay = dialog.querySelector('[data-review-pay]');
    if (pay) pay.textContent = gettext('Pay %(amount)s', {amount: r.amount_text});
    return new Promise((resolve) => {
      dialog.addEventListener('close', () => resolve(dialog.returnValue === 'pay'), {once: true});
      dialog.returnValue = '';
      dialog.showModal();
    });
  }

  // The page's price is gone: show the new one and let the buyer choose to go on with it.
  function priceChanged(form, payload) {
    const terms = payload.terms || {};
    const note = form.querySelector('[data-price-changed]') || document.createElement('div');
    note.setAttribute('data-price-changed', '');
    note.setAttribute('role', 'alert');
    note.className = 'card notice warning';
    note.textContent = '';
    const text = document.createElement('p');
    text.textContent = payload.error || gettext('The listing changed.');
    note.appendChild(text);
    const accept = document.createElement('button');
    accept.type = 'button';
    accept.className = 'primary';
    const buy = form.querySelector('[data-buy-label]');
    const samePrice = terms.amount === form.elements.amount.value &&
      terms.currency === form.elements.currency.value;
    if (samePrice) {
      // The words changed, not the price: the buyer must read them before buying.
      accept.textContent = gettext('Show the changes');
      accept.addEventListener('click', () => window.location.reload());
      note.appendChild(accept);
      if (buy) buy.hidden = true;
      form.prepend(note);
      accept.focus();
      return;
    }
    accept.textContent = gettext('Continue at %(amount)s', {amount: terms.amount_text});
    if (buy) buy.hidden = true;  // the stale price is not offered while the alert shows
    accept.addEventListener('click', () => {
      if (buy) buy.hidden = false;
      form.elements.amount.value = terms.amount;
      form.elements.currency.value = terms.currency;
      form.elements.version.value = terms.version;
      const label = form.querySelector('[data-buy-label]');
      if (label) label.textContent = gettext('Buy with escrow · %(amount)s', {amount: terms.amount_text});
      document.querySelectorAll('[data-listing-price]').forEach((el) => {
        el.textContent = terms.amount_text;
      });
      note.remove();
      W.status(gettext('Price updated to %(amount)s. Press Buy to continue.',
                       {amount: terms.amount_text}), 'ok');
    });
    note.appendChild(accept);
    form.prepend(note);
    accept.focus();
  }

  function wire(form) {
    const dialog = document.querySelector('[data-checkout-review]');
    const button = form.querySelector('button[type="submit"]');
    let busy = false;
    let hold = null;  // {release_url} while the item is held and nothing was sent yet

    function letGo(reason) {
      if (!hold) return Promise.resolve();
      const url = hold.release_url;
      hold = null;
      return post(url, {reason}).catch(() => null);
    }

    window.addEventListener('pagehide', () => {
      if (!hold) return;
      const data = new FormData();
      data.append('csrf_token', W.csrfToken());
      data.append('reason', 'closed');
      navigator.sendBeacon(hold.release_url, data);
      hold = null;
    });

    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      if (busy) return;  // a double click starts one checkout
      busy = true;
      button.disabled = true;
      const quote = {amount: form.elements.amount.value, currency: form.elements.currency.value,
                     version: form.elements.version.value};
      const base = {quote, arbitrator: form.elements.arbitrator ? form.elements.arbitrator.value : ''};
      let sent = false;
      let from = null;  // the wallet's account, once asked
      try {
        W.status(gettext('Checking the price and holding the item for you…'));
        let answer = await post(form.dataset.checkoutUrl, base);
        if (answer.status === 409 && answer.payload.terms) {
          priceChanged(form, answer.payload);
          W.status('');
          return;
        }
        if (!answer.ok) throw new Error(answer.payload.error || gettext('The server answered %(status)s.', {status: answer.status}));
        let prepared = answer.payload;
        hold = {release_url: prepared.release_url};
        const r = prepared.review;
        if (r.amount !== quote.amount || r.currency !== quote.currency) {
          await letGo('refused');
          throw new Error(gettext('The payment offered differs from the price shown; nothing was signed.'));
        }
        W.status(gettext('Review the purchase.'));
        if (!(await review(dialog, r))) {
          await letGo('refused');
          W.status(gettext('Purchase cancelled. The item is free again.'), 'ok');
          return;
        }
        from = await W.account();
        // The fee the buyer reviewed is the most the payment may be charged: the server refuses
        // a higher one now, and the escrow reverts if it is raised before the payment is mined.
        base.quote = Object.assign({}, quote, {platform_fee_bps: r.platform_fee_bps});
        if (!prepared.permit) {
          // The hold may have ended while the review was open: the server checks it again and
          // prepares the payment only if the item is still held for this buyer.
          answer = await post(form.dataset.checkoutUrl, Object.assign({}, base, {hold: prepared.hold}));
          if (!answer.ok) throw new Error(answer.payload.error || gettext('The server answered %(status)s.', {status: answer.status}));
          prepared = answer.payload;
        }
        if (prepared.permit) {
          const message = prepared.permit.message || {};
          if (String(message.owner || '').toLowerCase() !== from) {
            throw new Error(gettext('Your wallet is on %(wallet)s, but you are signed in as %(account)s. ' +
                                    'Switch accounts or sign in again.',
                                    {wallet: from, account: String(message.owner || '').toLowerCase()}));
          }
          if (String(message.value) !== r.amount) {
            throw new Error(gettext('The permit is for another amount than the price; nothing was signed.'));
          }
          W.status(gettext('Sign the permit for %(amount)s in your wallet (no fee)…', {amount: r.amount_text}));
          const signature = await W.provider().request({
            method: 'eth_signTypedData_v4', params: [from, JSON.stringify(prepared.permit)]});
          W.status(gettext('Preparing the payment…'));
          answer = await post(form.dataset.checkoutUrl, Object.assign({}, base, {
            hold: prepared.hold, permit: {signature, deadline: prepared.permit_deadline}}));
          if (!answer.ok) throw new Error(answer.payload.error || gettext('The server answered %(status)s.', {status: answer.status}));
          prepared = answer.payload;
        }
        const tx = prepared.tx;
        if (!tx) throw new Error(gettext('The server prepared no payment.'));
        if (String(tx.from || '').toLowerCase() !== from) {
          throw new Error(gettext('Your wallet is on %(wallet)s, but you are signed in as %(account)s. ' +
                                  'Switch accounts or sign in again.',
                                  {wallet: from, account: String(tx.from || '').toLowerCase()}));
        }
        const expectedValue = r.currency === 'ETH' ? BigInt(r.amount) : 0n;
        if (BigInt(tx.value || '0x0') !== expectedValue) {
          throw new Error(gettext('The transaction sends another amount than the price; nothing was sent.'));
        }
        W.status(gettext('Confirm the payment of %(amount)s in your wallet…', {amount: r.amount_text}));
        const hash = await W.provider().request({method: 'eth_sendTransaction', params: [tx]});
        sent = true;
        hold = null;
        const reported = await post(prepared.paid_url, {tx_hash: hash}).catch(() => null);
        if (reported && !reported.ok && reported.payload.error) {
          W.status(gettext('%(error)s Waiting for the transaction anyway…', {error: reported.payload.error}),
                   'error');
        }
        try {
          await W.waitForTx(hash);
        } catch (error) {
          // Reverted on chain: the server says why (e.g. the platform fee went up meanwhile).
          const why = prepared.failed_url ?
            await post(prepared.failed_url, {tx_hash: hash}).catch(() => null) : null;
          throw new Error((why && why.ok && why.payload.error) || error.message || String(error));
        }
        W.goTo(prepared.redirect);
      } catch (error) {
        if (!sent) await letGo('refused');
        W.status(sent ? W.explain(error) : await W.explainFailure(error, from), 'error');
      } finally {
        busy = false;
        button.disabled = false;
      }
    });
  }

  document.querySelectorAll('form[data-checkout-url]').forEach(wire);
})();
