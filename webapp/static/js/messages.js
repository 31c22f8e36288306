// Masked parts of a message (webapp/phishing.py ``render``): a risky link, card or phone
// number is hidden behind a warning; "Show" reveals it on purpose, as plain text (never a
// link). Without this script the button stays hidden and the text stays masked.
(function () {
  'use strict';

  document.querySelectorAll('.masked[data-original]').forEach((masked) => {
    const button = masked.querySelector('.masked-reveal');
    if (!button) {
      return;
    }
    button.hidden = false;
    button.addEventListener('click', () => {
      const shown = document.createElement('span');
      shown.className = 'revealed';
      shown.textContent = masked.getAttribute('data-original');
      button.replaceWith(shown);
      masked.classList.add('is-revealed');
    });
  });
})();
