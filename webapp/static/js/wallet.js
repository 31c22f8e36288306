// Wallet glue for the market, in plain JavaScript (no build step, nothing from a CDN).
//
// Any EIP-1193 wallet (window.ethereum) works. On a local chain the page also offers a dev
// wallet: the server forwards signing calls to the node's unlocked demo accounts, so every
// flow can be tried without an extension. The server prepares every transaction; this file
// only asks the wallet to sign and send it, then follows it until the indexer has seen it.
(function () {
  'use strict';

  const body = document.body;
  const devWalletOn = body.dataset.devWallet === '1';
  const csrfToken = () => document.querySelector('meta[name="csrf-token"]').content;

  // ---------------------------------------------------------------- status line

  function status(text, kind) {
    const box = document.getElementById('tx-status');
    if (!box) return;
    box.textContent = text;
    box.className = 'tx-status' + (kind ? ' ' + kind : '');
    box.hidden = !text;
  }

  // Posts `data` as JSON, or as multipart when it is a FormData (file uploads).
  async function postJSON(url, data) {
    const isForm = typeof FormData !== 'undefined' && data instanceof FormData;
    const headers = {'Accept': 'application/json', 'X-CSRFToken': csrfToken()};
    if (!isForm) headers['Content-Type'] = 'application/json';
    const response = await fetch(url, {
      method: 'POST',
      headers,
      body: isForm ? data : JSON.stringify(data || {}),
      credentials: 'same-origin',
    });
    let payload = {};
    try { payload = await response.json(); } catch (e) { payload = {}; }
    if (!response.ok) {
      throw new Error(payload.error || gettext('The server answered %(status)s.', {status: response.status}));
    }
    return payload;
  }

  async function getJSON(url) {
    const response = await fetch(url, {headers: {'Accept': 'application/json'},
                                       credentials: 'same-origin'});
    const payload = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(payload.error || gettext('The server answered %(status)s.', {status: response.status}));
    return payload;
  }

  // ---------------------------------------------------------------- providers

  const DevWallet = {
    isDevWallet: true,
    account() { return localStorage.getItem('devAccount'); },
    async request({method, params}) {
      switch (method) {
        case 'eth_requestAccounts':
        case 'eth_accounts': {
          const account = this.account();
          if (!account) throw new Error(gettext('Pick a demo account in the dev wallet first.'));
          return [account];
        }
        case 'eth_chainId':
          return (await getJSON('/dev-wallet/accounts')).chainId;
        case 'personal_sign':
        case 'eth_sendTransaction':
        case 'eth_signTypedData_v4':
          return (await postJSON('/dev-wallet/rpc', {method, params})).result;
        default:
          throw new Error(gettext('The dev wallet does not support %(method)s.', {method}));
      }
    },
  };

  function provider() {
    if (devWalletOn && (localStorage.getItem('walletKind') !== 'injected' || !window.ethereum)) {
      return DevWallet;
    }
    if (window.ethereum) return window.ethereum;
    throw new Error(devWalletOn ?
      gettext('No wallet found. Install a browser wallet or use the dev wallet.') :
      gettext('No wallet found. Install a browser wallet.'));
  }

  async function account() {
    const accounts = await provider().request({method: 'eth_requestAccounts', params: []});
    if (!accounts || !accounts.length) throw new Error(gettext('The wallet shared no account.'));
    return accounts[0].toLowerCase();
  }

  function toHex(text) {
    return '0x' + Array.from(new TextEncoder().encode(text))
      .map((b) => b.toString(16).padStart(2, '0')).join('');
  }

  // ---------------------------------------------------------------- sign-in (EIP-4361)

  async function signIn(next) {
    try {
      status(gettext('Asking your wallet for your address…'));
      const address = await account();
      const {message} = await getJSON('/auth/message?address=' + encodeURIComponent(address));
      status(gettext('Sign the message in your wallet to prove it is yours…'));
      const signature = await provider().request({method: 'personal_sign',
                                                  params: [toHex(message), address]});
      const result = await postJSON('/auth/verify', {message, signature, next});
      status(gettext('Signed in.'), 'ok');
      window.location.assign(result.next || '/');
    } catch (error) {
      status(error.message || String(error), 'error');
    }
  }

  // ---------------------------------------------------------------- transactions

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // Token payments: the server first answers with an EIP-2612 permit (typed data) that lets
  // the escrow take the tokens; the wallet signs it (no transaction, no gas) and the same URL,
  // given the signature, answers with the funding transaction.
  async function signPermit(url, data, prepared) {
    const from = await account();
    const owner = String(prepared.permit.message.owner || '').toLowerCase();
    if (owner && owner !== from) {
      throw new Error(gettext('Your wallet is on %(wallet)s, but you are signed in as %(account)s. ' +
                              'Switch accounts or sign in again.', {wallet: from, account: owner}));
    }
    status(gettext('Allow the escrow to take the payment: sign the permit in your wallet…'));
    const signature = await provider().request({
      method: 'eth_signTypedData_v4', params: [from, JSON.stringify(prepared.permit)]});
    status(gettext('Preparing the payment…'));
    const permit = {signature, deadline: prepared.permit_deadline};
    if (typeof FormData !== 'undefined' && data instanceof FormData) {
      data.set('permit', JSON.stringify(permit));
      return postJSON(url, data);
    }
    return postJSON(url, Object.assign({}, data || {}, {permit}));
  }

  // Sends what the server prepared at `url`, then waits until the chain mined it and the
  // indexer has recorded it. Returns the server's final answer.
  async function sendPrepared(url, data) {
    status(gettext('Preparing the transaction…'));
    let prepared = await postJSON(url, data);
    if (prepared.permit) prepared = await signPermit(url, data, prepared);
    if (!prepared.tx) return prepared;  // nothing to sign (e.g. a message only)
    const from = await account();
    if (prepared.tx.from && prepared.tx.from.toLowerCase() !== from) {
      throw new Error(gettext('Your wallet is on %(wallet)s, but you are signed in as %(account)s. ' +
                              'Switch accounts or sign in again.',
                              {wallet: from, account: prepared.tx.from.toLowerCase()}));
    }
    status(gettext('Confirm the transaction in your wallet…'));
    const hash = await provider().request({method: 'eth_sendTransaction', params: [prepared.tx]});
    if (prepared.after_send) {
      await postJSON(prepared.after_send, {tx_hash: hash}).catch(() => null);
    }
    const state = await waitForTx(hash);
    return Object.assign({hash}, prepared, state);
  }

  // Follows a sent transaction until it is mined and the indexer has recorded it.
  async function waitForTx(hash) {
    status(gettext('Sent. Waiting for the chain to confirm it… (%(hash)s…)', {hash: hash.slice(0, 10)}));
    for (let attempt = 0; attempt < 600; attempt++) {
      const state = await getJSON('/api/tx/' + hash).catch(() => ({status: 'pending'}));
      if (state.status === 'failed') {
        throw new Error(state.error || gettext('The transaction failed on chain; nothing was changed.'));
      }
      if (state.status === 'mined' && state.indexed) {
        status(gettext('Confirmed in block %(block)s.', {block: state.block}), 'ok');
        return state;
      }
      if (state.status === 'mined') {
        status(gettext('Mined in block %(block)s. Updating the page…', {block: state.block}));
      }
      await sleep(attempt < 20 ? 250 : 1000);
    }
    throw new Error(gettext('The transaction is taking long. It may still go through: reload later.'));
  }

  // Shows the page after an action. Assigning a URL that differs only by its #fragment would
  // not reload the page, and the page must show the new state.
  function goTo(target) {
    if (!target) { window.location.reload(); return; }
    const url = new URL(target, window.location.href);
    if (url.pathname === window.location.pathname && url.search === window.location.search) {
      if (url.hash) history.replaceState(null, '', url.hash);
      window.location.reload();
    } else {
      window.location.assign(url.href);
    }
  }

  function wireActionButtons(root) {
    root.querySelectorAll('[data-tx-url]').forEach((el) => {
      const isForm = el.tagName === 'FORM';
      el.addEventListener(isForm ? 'submit' : 'click', async (event) => {
        event.preventDefault();
        if (el.dataset.confirm && !window.confirm(el.dataset.confirm)) return;
        const multipart = isForm && el.enctype === 'multipart/form-data';
        const data = multipart ? new FormData(el) :
          isForm ? Object.fromEntries(new FormData(el).entries()) :
            JSON.parse(el.dataset.txBody || '{}');
        if (!multipart) delete data.csrf_token;
        const buttons = (isForm ? el : el.parentElement).querySelectorAll('button');
        buttons.forEach((b) => { b.disabled = true; });
        try {
          const result = await sendPrepared(el.dataset.txUrl, data);
          const target = result.redirect || el.dataset.redirect;
          goTo(target);
        } catch (error) {
          status(error.message || String(error), 'error');
          buttons.forEach((b) => { b.disabled = false; });
        }
      });
    });
  }

  // ---------------------------------------------------------------- dev wallet picker

  async function setUpDevWalletPicker() {
    const picker = document.getElementById('dev-account');
    if (!picker) return;
    try {
      const {accounts} = await getJSON('/dev-wallet/accounts');
      const chosen = localStorage.getItem('devAccount');
      picker.innerHTML = '';
      const blank = document.createElement('option');
      blank.value = '';
      blank.textContent = gettext('Dev wallet: pick an account');
      picker.appendChild(blank);
      accounts.forEach((a, i) => {
        const option = document.createElement('option');
        option.value = a.address;
        option.textContent = '#' + i + ' ' + (a.name ? a.name + ' ' : '') +
          a.address.slice(0, 6) + '…' + a.address.slice(-4);
        if (a.address === chosen) option.selected = true;
        picker.appendChild(option);
      });
      picker.addEventListener('change', () => {
        if (picker.value) {
          localStorage.setItem('devAccount', picker.value);
          localStorage.setItem('walletKind', 'dev');
        } else {
          localStorage.removeItem('devAccount');
        }
      });
    } catch (error) {
      picker.hidden = true;
    }
  }

  // ---------------------------------------------------------------- countdowns

  // One message per unit (each with its plural forms), and one sentence per pair of units.
  const units = {
    days: (n) => ngettext('%(num)s d', '%(num)s d', n),
    hours: (n) => ngettext('%(num)s h', '%(num)s h', n),
    minutes: (n) => ngettext('%(num)s min', '%(num)s min', n),
    seconds: (n) => ngettext('%(num)s s', '%(num)s s', n),
  };

  function formatLeft(ms) {
    if (ms <= 0) return gettext('passed');
    const s = Math.floor(ms / 1000);
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600),
      m = Math.floor((s % 3600) / 60);
    if (d > 0) {
      return gettext('%(days)s %(hours)s left', {days: units.days(d), hours: units.hours(h)});
    }
    if (h > 0) {
      return gettext('%(hours)s %(minutes)s left', {hours: units.hours(h), minutes: units.minutes(m)});
    }
    return gettext('%(minutes)s %(seconds)s left',
                   {minutes: units.minutes(m), seconds: units.seconds(s % 60)});
  }

  function tickCountdowns() {
    document.querySelectorAll('[data-deadline]').forEach((el) => {
      const at = Date.parse(el.dataset.deadline);
      if (!Number.isNaN(at)) el.textContent = formatLeft(at - Date.now());
    });
  }

  // ---------------------------------------------------------------- start

  document.querySelectorAll('[data-signin]').forEach((el) => {
    el.addEventListener('click', (event) => {
      event.preventDefault();
      signIn(el.dataset.next || new URLSearchParams(window.location.search).get('next'));
    });
  });
  document.querySelectorAll('[data-use-injected]').forEach((el) => {
    el.addEventListener('click', () => localStorage.setItem('walletKind', 'injected'));
  });
  wireActionButtons(document);
  setUpDevWalletPicker();
  tickCountdowns();
  setInterval(tickCountdowns, 1000);

  window.EscrowWallet = {provider, account, signIn, sendPrepared, waitForTx, postJSON, getJSON,
                         status, goTo, csrfToken};
})();
