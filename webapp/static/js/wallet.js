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

  // What went wrong, in words a person can act on. Wallets reject with EIP-1193 codes: 4001
  // is the person pressing Reject, 4100 a site the wallet has not allowed yet.
  function explain(error) {
    const code = error && (error.code ?? (error.data && error.data.code));
    if (code === 4001 || code === 'ACTION_REJECTED') {
      return gettext('You refused the request in your wallet.');
    }
    if (code === 4100) return gettext('Your wallet has not allowed this site yet: open the wallet and connect it.');
    if (code === -32002) return gettext('Your wallet is already asking you something: open it and answer.');
    return (error && error.message) || String(error);
  }

  // Why an action failed, looking first at the session: a sign-out or a sign-in as someone else
  // in another tab ends this page's session (and its CSRF token), and the server's refusal
  // would not say so. `expected`: the address the page acted for, when it knows it.
  async function explainFailure(error, expected) {
    const code = error && error.code;
    if (code === 4001 || code === 'ACTION_REJECTED' || (error && error.sent)) return explain(error);
    let address;
    try {
      address = (await getJSON('/auth/signin')).address;
    } catch (e) {
      return explain(error);
    }
    if (!address) {
      return gettext('You are signed out (perhaps in another tab), so nothing was sent. ' +
                     'Sign in again, then try once more.');
    }
    if (expected && address !== String(expected).toLowerCase()) {
      return gettext('You are now signed in as %(account)s (perhaps in another tab), so ' +
                     'nothing was sent. Reload the page.', {account: address});
    }
    return explain(error);
  }

  // The account the page was made for (the header names it), or null.
  function pageAccount() {
    const me = document.querySelector('[data-signed-in-as]');
    return me ? me.getAttribute('title') : null;
  }

  // fetch, with a clear message when the market does not answer at all.
  async function send(url, options) {
    try {
      return await fetch(url, options);
    } catch (error) {
      throw new Error(gettext('The market did not answer. Check your connection and try again.'));
    }
  }

  // Posts `data` as JSON, or as multipart when it is a FormData (file uploads).
  async function postJSON(url, data) {
    const isForm = typeof FormData !== 'undefined' && data instanceof FormData;
    const headers = {'Accept': 'application/json', 'X-CSRFToken': csrfToken()};
    if (!isForm) headers['Content-Type'] = 'application/json';
    const response = await send(url, {
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
    const response = await send(url, {headers: {'Accept': 'application/json'},
                                      credentials: 'same-origin'});
    const payload = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(payload.error || gettext('The server answered %(status)s.', {status: response.status}));
    return payload;
  }

  // ---------------------------------------------------------------- providers

  // The dev wallet for one demo account (the one picked in the header when none is given).
  function devWallet(address) {
    return {
      isDevWallet: true,
      account() { return address || localStorage.getItem('devAccount'); },
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
  }
  const DevWallet = devWallet(null);

  function noWallet() {
    return new Error(devWalletOn ?
      gettext('No wallet found. Install a browser wallet or use the dev wallet.') :
      gettext('No wallet found. Install a browser wallet.'));
  }

  // The wallet the person chose last (a sign-in stores it): the dev wallet on a local chain
  // unless they signed in with their browser wallet.
  function provider() {
    if (devWalletOn && (localStorage.getItem('walletKind') !== 'injected' || !window.ethereum)) {
      return DevWallet;
    }
    if (window.ethereum) return window.ethereum;
    throw noWallet();
  }

  // Browser wallets may add window.ethereum after this script ran; they announce it with
  // `ethereum#initialized`. A click that comes first waits a little for it.
  function injectedWallet(waitMs) {
    if (window.ethereum) return Promise.resolve(window.ethereum);
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        window.removeEventListener('ethereum#initialized', done);
        if (window.ethereum) resolve(window.ethereum); else reject(noWallet());
      };
      const timer = setTimeout(done, waitMs);
      window.addEventListener('ethereum#initialized', done);
    });
  }

  async function accountOf(wallet) {
    const accounts = await wallet.request({method: 'eth_requestAccounts', params: []});
    if (!accounts || !accounts.length) throw new Error(gettext('The wallet shared no account.'));
    return String(accounts[0]).toLowerCase();
  }

  async function account() {
    return accountOf(provider());
  }

  function toHex(text) {
    return '0x' + Array.from(new TextEncoder().encode(text))
      .map((b) => b.toString(16).padStart(2, '0')).join('');
  }

  // ---------------------------------------------------------------- sign-in (EIP-4361)

  let signingIn = false;

  // Signs in with one wallet from start to end: `kind` is 'dev' (the demo account `devAddress`,
  // or the one picked in the header) or 'injected' (the browser's EIP-1193 wallet). Until the
  // server accepts the signature the previous session stays as it was. Resolves to the
  // server's answer, or null when the sign-in did not happen (the reason is in the status line).
  async function signInWith(kind, next, devAddress) {
    if (signingIn) return null;  // a double click signs in once
    signingIn = true;
    try {
      status(gettext('Asking your wallet for your address…'));
      const picked = document.getElementById('dev-account');
      const wallet = kind === 'dev' && devWalletOn ?
        devWallet(devAddress || (picked && picked.value) || null) :
        kind === 'injected' ? await injectedWallet(3000) : provider();
      const address = await accountOf(wallet);
      const {message} = await getJSON('/auth/message?address=' + encodeURIComponent(address));
      status(gettext('Sign the message in your wallet to prove it is yours…'));
      const signature = await wallet.request({method: 'personal_sign',
                                              params: [toHex(message), address]});
      const result = await postJSON('/auth/verify', {message, signature, next});
      localStorage.setItem('walletKind', wallet.isDevWallet ? 'dev' : 'injected');
      if (wallet.isDevWallet) localStorage.setItem('devAccount', address);
      status(gettext('Signed in.'), 'ok');
      return result;
    } catch (error) {
      status(explain(error), 'error');
      return null;
    } finally {
      signingIn = false;
    }
  }

  async function signIn(next, kind) {
    const result = await signInWith(kind, next);
    if (result) window.location.assign(result.next || '/');
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
    try {
      if (prepared.after_send) {
        await postJSON(prepared.after_send, {tx_hash: hash}).catch(() => null);
      }
      const state = await waitForTx(hash);
      return Object.assign({hash}, prepared, state);
    } catch (error) {
      error.sent = true;  // the transaction left the wallet: the reason is on the chain
      throw error;
    }
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
          status(await explainFailure(error, pageAccount()), 'error');
          buttons.forEach((b) => { b.disabled = false; });
        }
      });
    });
  }

  // ---------------------------------------------------------------- dev wallet picker

  const SWITCH_DELAY_MS = 600;

  // The header's list of demo accounts shows who is signed in. Picking another account while
  // signed in signs in again as that account (a new EIP-4361 sign-in) and reloads the page;
  // signed out, it only chooses the account the next sign-in uses.
  async function setUpDevWalletPicker() {
    const picker = document.getElementById('dev-account');
    if (!picker) return;
    let info;
    try {
      info = await getJSON('/dev-wallet/accounts');
    } catch (error) {
      picker.hidden = true;
      return;
    }
    const addresses = info.accounts.map((a) => a.address);
    const signedIn = info.signedIn && addresses.includes(info.signedIn) ? info.signedIn : null;
    if (signedIn && localStorage.getItem('walletKind') !== 'injected') {
      localStorage.setItem('devAccount', signedIn);  // the dev wallet signs as who is signed in
    }
    const shown = info.signedIn ? signedIn || '' : localStorage.getItem('devAccount') || '';
    picker.innerHTML = '';
    const blank = document.createElement('option');
    blank.value = '';
    blank.textContent = gettext('Dev wallet: pick an account');
    picker.appendChild(blank);
    info.accounts.forEach((a, i) => {
      const option = document.createElement('option');
      option.value = a.address;
      // A long name would push the address out of the closed list: the name is cut.
      const name = a.name && a.name.length > 20 ? a.name.slice(0, 19) + '…' : a.name;
      option.textContent = '#' + i + ' ' + (name ? name + ' ' : '') +
        a.address.slice(0, 6) + '…' + a.address.slice(-4);
      if (name !== a.name) option.title = a.name;
      picker.appendChild(option);
    });
    picker.value = addresses.includes(shown) ? shown : '';
    let current = picker.value;

    const remember = (chosen) => {
      if (chosen) {
        localStorage.setItem('devAccount', chosen);
        localStorage.setItem('walletKind', 'dev');
      } else {
        localStorage.removeItem('devAccount');
      }
      current = chosen;
    };

    // Arrow keys on a closed list change it at every press: a switch waits until the keys
    // stop, so going past an account does not sign in as it.
    let timer = null;
    picker.addEventListener('change', () => {
      if (!info.signedIn) remember(picker.value);  // at once: a Sign in click may follow
      clearTimeout(timer);
      timer = setTimeout(settle, info.signedIn ? SWITCH_DELAY_MS : 0);
    });

    async function settle() {
      const chosen = picker.value;
      // Ask again: another tab may have signed in or out since this page was made.
      let now;
      try {
        now = (await getJSON('/dev-wallet/accounts')).signedIn || null;
      } catch (error) {
        status(explain(error), 'error');
        picker.value = current;
        return;
      }
      if (!now) {
        remember(chosen);
        return;
      }
      if (!chosen || chosen === now) {
        // Signing out is the header's Sign out button; this list only switches accounts.
        picker.value = addresses.includes(now) ? now : '';
        current = picker.value;
        if (chosen === now && now !== info.signedIn) goTo(null);  // switched in another tab
        return;
      }
      picker.disabled = true;
      const result = await signInWith('dev', null, chosen);
      if (result) {
        goTo(null);
        return;
      }
      picker.value = current;  // the previous account is still the one signed in
      picker.disabled = false;
      picker.focus();
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

  // Each sign-in button names its wallet (data-wallet="dev" or "injected"); one without a
  // name uses the wallet chosen last.
  document.querySelectorAll('[data-signin]').forEach((el) => {
    el.addEventListener('click', (event) => {
      event.preventDefault();
      const kind = el.dataset.wallet || (el.hasAttribute('data-use-injected') ? 'injected' : null);
      signIn(el.dataset.next || new URLSearchParams(window.location.search).get('next'), kind);
    });
  });
  wireActionButtons(document);
  setUpDevWalletPicker();
  tickCountdowns();
  setInterval(tickCountdowns, 1000);

  window.EscrowWallet = {provider, account, signIn, sendPrepared, waitForTx, postJSON, getJSON,
                         status, explain, explainFailure, goTo, csrfToken,
                         wire: wireActionButtons};  // wire(root): binds buttons added later
})();
