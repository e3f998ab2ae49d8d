// Number formatting for the dashboard: money, percentages and signed changes, in one locale.

const LOCALE = "en-US";

const moneyFormatters = new Map();

/**
 * Formats an amount of money, compactly above a million (1.2M) unless told otherwise.
 * @param {number} amount
 * @param {{ currency?: string, compact?: boolean }} [options]
 */
export function formatMoney(amount, { currency = "USD", compact = Math.abs(amount) >= 1e6 } = {}) {
  const key = `${currency}:${compact}`;
  let formatter = moneyFormatters.get(key);
  if (!formatter) {
    formatter = new Intl.NumberFormat(LOCALE, {
      style: "currency",
      currency,
      notation: compact ? "compact" : "standard",
      maximumFractionDigits: compact ? 2 : 0,
    });
    moneyFormatters.set(key, formatter);
  }
  return formatter.format(amount);
}

const percentFormatter = new Intl.NumberFormat(LOCALE, {
  style: "percent",
  minimumFractionDigits: 2,
  maximumFractionDigits: 2,
});

/** Formats a fraction (0.0123) as a percentage (1.23%). */
export function formatPercent(fraction) {
  return percentFormatter.format(fraction);
}

/** Formats a change with its sign, so gains read +1.23% and losses −1.23%. */
export function formatChange(fraction) {
  const text = formatPercent(Math.abs(fraction));
  if (fraction > 0) return `+${text}`;
  if (fraction < 0) return `\u2212${text}`;
  return text;
}

/** The CSS class for a change: up, down or nothing. */
export function changeClass(value) {
  if (value > 0) return "up";
  if (value < 0) return "down";
  return "";
}

/** Formats a plain number with a fixed number of decimals. */
export function formatNumber(value, decimals = 2) {
  return value.toLocaleString(LOCALE, {
    minimumFractionDigits: decimals,
    maximumFractionDigits: decimals,
  });
}
