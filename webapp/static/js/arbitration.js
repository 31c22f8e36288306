// The arbitration case page: the ruling slider shows what each side receives at each split.
// The amounts for every whole percent come from the server in the form's data-splits.
(function () {
  'use strict';

  const form = document.getElementById('ruling-form');
  if (!form) return;
  const splits = JSON.parse(form.dataset.splits);
  const slider = document.getElementById('buyer-percent');

  function show() {
    const split = splits[Number(slider.value)];
    document.getElementById('split-percent').textContent = slider.value;
    Object.keys(split).forEach((key) => {
      document.getElementById('split-' + key).textContent = split[key];
    });
  }

  slider.addEventListener('input', show);
})();
