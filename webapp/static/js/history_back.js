// "Go back" on error pages: the previous page when there is one, else the link's own target
// (the market). A script file, because the Content-Security-Policy runs no javascript: URL.
(function () {
  'use strict';

  document.querySelectorAll('[data-history-back]').forEach((link) => {
    link.addEventListener('click', (event) => {
      if (window.history.length > 1) {
        event.preventDefault();
        window.history.back();
      }
    });
  });
})();
