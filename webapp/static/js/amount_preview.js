/* Shows, next to an amount field, the amount the server will understand ("= 1.5 ETH") or why
 * it will refuse it, while the person types.
 *
 * The rules are those of escrow/amounts.py parse_units (read its docstring) and
 * webapp/listings.py parse_amount, with the same messages; tests/test_amounts.py runs a table
 * of cases through both. Change them together.
 *
 * Messages go through gettext (static/js/i18n.js) as whole sentences, one for each noun the
 * page uses ("amount", "price"), so that every language can word them its own way. Under node
 * (the tests) there is no i18n.js: the messages are the English ones.
 *
 * Markup: <input data-amount-preview="ID"> names the element (aria-live="polite") that gets
 * the text; the currency is the value of the form's "currency" field (or the field named by
 * data-currency-field). No inline script: this file is loaded with a <script src>.
 */
(function () {
  "use strict";

  var TRIM = /^[ \t\r\n\u00a0\u202f]+|[ \t\r\n\u00a0\u202f]+$/g;
  var EXPONENT = /^(?:[0-9]+(?:[.,][0-9]*)?|[.,][0-9]+)[eE][+-]?[0-9]+$/;
  var ALLOWED = /^[0-9., \u00a0\u202f]+$/;
  var SEPARATOR = /[., \u00a0\u202f]/;
  var SEPARATORS = /[., \u00a0\u202f]/g;
  var MAX_TEXT = 200;
  var SHOWN_GROUP = "\u202f";
  var DEFAULT_MAX = (BigInt(1) << BigInt(128)) - BigInt(1);

  // webapp/views.py DECIMALS and MAX_PRICE_UNITS (a test checks they agree).
  var CURRENCIES = {
    ETH: { decimals: 18, max: "10000000000000000000000" },
    USD: { decimals: 6, max: "10000000000000" },
    KZT: { decimals: 2, max: "500000000000" },
  };
  var MAX_PRICE_TEXT = 60; // webapp/listings.py MAX_PRICE_TEXT

  function AmountError(message) {
    this.message = message;
  }

  // The message in the page's language (i18n.js's gettext; under node, the English one), with
  // its values: %(name)s and %(name)d, as in the messages of escrow/amounts.py, which are the
  // same texts (one translation serves both).
  function gettext(message, values) {
    var text = message;
    if (typeof window !== "undefined" && typeof window.gettext === "function") {
      text = window.gettext(message);
    }
    return text.replace(/%\(([a-z_]+)\)[sd]/g, function (match, name) {
      return values && Object.prototype.hasOwnProperty.call(values, name)
        ? String(values[name])
        : match;
    });
  }

  function isPrice(noun) {
    return noun === "price";
  }

  function stripAmount(text) {
    return text.replace(TRIM, "");
  }

  function notANumber(noun) {
    return isPrice(noun)
      ? gettext("Enter the price as a number, like 1,5 or 1 500 or 12.75.")
      : gettext("Enter the amount as a number, like 1,5 or 1 500 or 12.75.");
  }

  function tooManyDecimals(decimals, noun, symbol) {
    var values = { symbol: symbol, decimals: decimals };
    if (decimals === 0) {
      if (!symbol) return gettext("Use a whole number.");
      return isPrice(noun)
        ? gettext("%(symbol)s prices are whole numbers.", values)
        : gettext("%(symbol)s amounts are whole numbers.", values);
    }
    if (symbol) {
      return isPrice(noun)
        ? gettext("%(symbol)s prices have at most %(decimals)d decimal places.", values)
        : gettext("%(symbol)s amounts have at most %(decimals)d decimal places.", values);
    }
    return gettext("Use at most %(decimals)d decimal places.", values);
  }

  function outOfPlace(noun) {
    return isPrice(noun)
      ? gettext(
        "A separator is out of place in the price: write one comma or dot before the " +
        "decimals and spaces between thousands, like 1 500,50."
      )
      : gettext(
        "A separator is out of place in the amount: write one comma or dot before the " +
        "decimals and spaces between thousands, like 1 500,50."
      );
  }

  function rstripZeros(digits) {
    return digits.replace(/0+$/, "");
  }

  function split(s, noun) {
    var groups = s.split(SEPARATOR);
    var separators = (s.match(SEPARATORS) || []).map(function (c) {
      return c === "." || c === "," ? c : " ";
    });
    if (separators.length === 0) return [s, ""];
    var first = s.charAt(0);
    var end = s.charAt(s.length - 1);
    if (first === "." || first === ",") {
      throw new AmountError(
        gettext('Write a digit before the "%(mark)s", like 0%(mark)s5.', { mark: first })
      );
    }
    if (end === "." || end === ",") {
      throw new AmountError(
        gettext('Write the decimals after the "%(mark)s", like 1%(mark)s5, or leave it out.',
          { mark: end })
      );
    }
    if (groups.indexOf("") !== -1) throw new AmountError(outOfPlace(noun));
    var last = separators[separators.length - 1];
    var count = separators.filter(function (c) { return c === last; }).length;
    var decimal = null;
    var whole, fraction, grouping;
    if (last !== " " && count === 1) {
      decimal = last;
      whole = groups.slice(0, -1);
      fraction = groups[groups.length - 1];
      grouping = separators.slice(0, -1);
    } else {
      whole = groups;
      fraction = "";
      grouping = separators;
    }
    var kinds = grouping.filter(function (c, i) { return grouping.indexOf(c) === i; });
    if (kinds.length > 1) throw new AmountError(outOfPlace(noun));
    if (whole.length > 1) {
      var bad = whole[0].length > 3 || whole[0].charAt(0) === "0" ||
        whole.slice(1).some(function (g) { return g.length !== 3; });
      if (bad) {
        throw new AmountError(
          gettext("Write thousands in groups of three digits, like 1 500 000, or without separators.")
        );
      }
    } else if (decimal === "," && fraction.length === 3 && whole[0].length <= 3 &&
               whole[0].charAt(0) !== "0") {
      var asThousands = whole[0] + fraction;
      var decimals = rstripZeros(fraction);
      var mark = decimals.length !== 3 ? "," : ".";
      var asDecimals = whole[0] + (decimals ? mark + decimals : "");
      throw new AmountError(
        gettext(
          "%(text)s could mean %(thousands)s or %(decimal)s: " +
          "write %(thousands)s or %(decimal)s instead.",
          { text: s, thousands: asThousands, decimal: asDecimals }
        )
      );
    }
    return [whole.join(""), fraction];
  }

  function formatUnits(units, decimals, group) {
    units = BigInt(units);
    var base = BigInt(10) ** BigInt(decimals);
    var whole = (units / base).toString().replace(/\B(?=([0-9]{3})+(?![0-9]))/g, group || ",");
    var fraction = decimals ? rstripZeros((units % base).toString().padStart(decimals, "0")) : "";
    return fraction ? whole + "." + fraction : whole;
  }

  function showUnits(units, decimals) {
    return formatUnits(units, decimals, SHOWN_GROUP);
  }

  /* escrow.amounts.parse_units: a BigInt, or throws AmountError. */
  function parseUnits(text, decimals, options) {
    options = options || {};
    var maxUnits = options.maxUnits === undefined ? DEFAULT_MAX : BigInt(options.maxUnits);
    var noun = options.noun || "amount"; // "amount" or "price": the words of the messages
    var symbol = options.symbol || "";
    if (typeof text !== "string") throw new AmountError(notANumber(noun));
    var s = stripAmount(text);
    var price = isPrice(noun);
    if (!s) {
      throw new AmountError(price ? gettext("Enter the price.") : gettext("Enter the amount."));
    }
    if (s.charAt(0) === "-" || s.charAt(0) === "\u2212") {
      throw new AmountError(
        price
          ? gettext("The price must be more than zero: write it without a minus sign.")
          : gettext("The amount must be more than zero: write it without a minus sign.")
      );
    }
    if (s.charAt(0) === "+") {
      throw new AmountError(
        price
          ? gettext("Write the price without a plus sign.")
          : gettext("Write the amount without a plus sign.")
      );
    }
    if (EXPONENT.test(s)) {
      throw new AmountError(
        price
          ? gettext("Write the price in plain digits, without an exponent: 1000, not 1e3.")
          : gettext("Write the amount in plain digits, without an exponent: 1000, not 1e3.")
      );
    }
    if (!ALLOWED.test(s)) throw new AmountError(notANumber(noun));
    if (Array.from(s).length > MAX_TEXT) {
      throw new AmountError(
        price ? gettext("That price is too long.") : gettext("That amount is too long.")
      );
    }
    var parts = split(s, noun);
    var fraction = rstripZeros(parts[1]);
    if (fraction.length > decimals) {
      throw new AmountError(tooManyDecimals(decimals, noun, symbol));
    }
    var units = BigInt(parts[0]) * BigInt(10) ** BigInt(decimals) +
      BigInt(fraction.padEnd(decimals, "0") || "0");
    if (units === BigInt(0)) {
      throw new AmountError(
        price
          ? gettext("The price must be more than zero.")
          : gettext("The amount must be more than zero.")
      );
    }
    if (units > maxUnits) {
      var shown = showUnits(maxUnits, decimals) + (symbol ? " " + symbol : "");
      throw new AmountError(
        price
          ? gettext("That price is too large: at most %(maximum)s.", { maximum: shown })
          : gettext("That amount is too large: at most %(maximum)s.", { maximum: shown })
      );
    }
    return units;
  }

  /* webapp.listings.parse_amount (a price field or search filter): a BigInt, or throws. */
  function parsePrice(text, currency) {
    var known = Object.prototype.hasOwnProperty.call(CURRENCIES, currency);
    var rules = known ? CURRENCIES[currency] : CURRENCIES.ETH;
    var s = stripAmount(text || "");
    if (!s) throw new AmountError(gettext("Enter a price."));
    if (Array.from(s).length > MAX_PRICE_TEXT) {
      throw new AmountError(gettext("That price is too long."));
    }
    return parseUnits(s, rules.decimals, { maxUnits: rules.max, noun: "price", symbol: currency });
  }

  /* {units: "1500000"} or {error: "message"}: the shape the tests compare. */
  function check(fn) {
    try {
      return { units: fn().toString() };
    } catch (err) {
      if (err instanceof AmountError) return { error: err.message };
      throw err;
    }
  }

  /* The text to show next to a price field: "= 1.5 ETH", an error, or "" (empty field). */
  function preview(text, currency) {
    if (!Object.prototype.hasOwnProperty.call(CURRENCIES, currency) || !stripAmount(text || "")) {
      return { text: "", error: false };
    }
    var result = check(function () { return parsePrice(text, currency); });
    if (result.error) return { text: result.error, error: true };
    return {
      text: "= " + showUnits(result.units, CURRENCIES[currency].decimals) + " " + currency,
      error: false,
    };
  }

  function attach(input) {
    var output = document.getElementById(input.getAttribute("data-amount-preview"));
    if (!output) return;
    var form = input.form;
    var currency = form
      ? form.elements.namedItem(input.getAttribute("data-currency-field") || "currency")
      : null;
    function update(onLoad) {
      var shown = preview(input.value, currency ? currency.value : "ETH");
      // On load an error is already on the page, from the server: don't say it twice.
      if (onLoad && shown.error) return;
      output.textContent = shown.text;
      output.classList.toggle("field-error", shown.error);
    }
    input.addEventListener("input", function () { update(false); });
    if (currency) currency.addEventListener("change", function () { update(false); });
    update(true);
  }

  function start() {
    var inputs = document.querySelectorAll("input[data-amount-preview]");
    for (var i = 0; i < inputs.length; i += 1) attach(inputs[i]);
  }

  var api = {
    CURRENCIES: CURRENCIES,
    MAX_PRICE_TEXT: MAX_PRICE_TEXT,
    check: check,
    formatUnits: formatUnits,
    parsePrice: parsePrice,
    parseUnits: parseUnits,
    preview: preview,
    showUnits: showUnits,
  };
  if (typeof module !== "undefined" && module.exports) {
    module.exports = api;
  } else if (typeof document !== "undefined") {
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", start);
    } else {
      start();
    }
  }
})();
