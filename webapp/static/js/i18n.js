// Translations for the page's scripts: window.I18N comes from /i18n/<lang>.js, made from the
// same catalogue as the pages (webapp/translations). Placeholders are %(name)s or %(name)d,
// as in Python.
(function () {
  'use strict';

  const data = window.I18N || {messages: {}, categories: ['one', 'other']};

  function fill(text, values) {
    if (!values) return text;
    return text.replace(/%\(([a-z_]+)\)[sd]/g, (match, name) =>
      Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : match);
  }

  window.gettext = function (message, values) {
    const found = data.messages[message];
    return fill(typeof found === 'string' && found ? found : message, values);
  };

  window.ngettext = function (singular, plural, count, values) {
    const forms = data.messages[singular];
    const all = Object.assign({num: count}, values || {});
    if (Array.isArray(forms) && data.plural) {
      const index = data.categories.indexOf(data.plural(count));
      if (index >= 0 && forms[index]) return fill(forms[index], all);
    }
    return fill(count === 1 ? singular : plural, all);
  };
})();
