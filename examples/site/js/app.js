// The dashboard: fills the key figures, the performance chart, positions and allocation.

import { drawChart, rebase } from "./chart.js";
import { changeClass, formatChange, formatMoney, formatNumber, formatPercent } from "./format.js";

/** A fixed sample portfolio, so the page works without a backend. */
const PORTFOLIO = {
  nav: 128_450_000,
  navChange: 0.0214,
  pnl: 412_300,
  pnlPct: 0.0032,
  valueAtRisk: 1_870_000,
  varLimit: 2_500_000,
  sharpe: 1.38,
  positions: [
    { ticker: "MSFT", name: "Microsoft", weight: 0.082, price: 428.15, day: 0.0121 },
    { ticker: "AAPL", name: "Apple", weight: 0.074, price: 229.87, day: -0.0043 },
    { ticker: "NVDA", name: "NVIDIA", weight: 0.066, price: 118.42, day: 0.0311 },
    { ticker: "AMZN", name: "Amazon", weight: 0.051, price: 186.33, day: 0.0057 },
    { ticker: "JPM", name: "JPMorgan Chase", weight: 0.038, price: 211.6, day: -0.0112 },
    { ticker: "ASML", name: "ASML Holding", weight: 0.031, price: 842.1, day: 0 },
  ],
  allocation: [
    { name: "Equities", weight: 0.62 },
    { name: "Government bonds", weight: 0.21 },
    { name: "Credit", weight: 0.09 },
    { name: "Commodities", weight: 0.05 },
    { name: "Cash", weight: 0.03 },
  ],
};

/** Deterministic sample prices: a seeded random walk per series. */
function randomWalk(seed, length, drift, volatility) {
  let state = seed;
  let value = 100;
  const values = [];
  for (let day = 0; day < length; day += 1) {
    state = (state * 1_103_515_245 + 12_345) % 2_147_483_648;
    const shock = state / 2_147_483_648 - 0.5;
    value *= 1 + drift + shock * volatility;
    values.push(value);
  }
  return values;
}

const PERIOD_DAYS = { "1M": 21, "3M": 63, "1Y": 252, "5Y": 1260 };

function fill(field, text, className) {
  const node = document.querySelector(`[data-field="${field}"]`);
  if (!node) return;
  node.textContent = text;
  if (className) node.classList.add(className);
}

function renderFigures(portfolio) {
  fill("nav", formatMoney(portfolio.nav));
  fill("navChange", `${formatChange(portfolio.navChange)} this month`, changeClass(portfolio.navChange));
  fill("pnl", formatMoney(portfolio.pnl));
  fill("pnlPct", formatChange(portfolio.pnlPct), changeClass(portfolio.pnlPct));
  fill("var", formatMoney(portfolio.valueAtRisk));
  fill("varLimit", `${formatPercent(portfolio.valueAtRisk / portfolio.varLimit)} of limit`);
  fill("sharpe", formatNumber(portfolio.sharpe));
  fill("sharpeRank", "Top quartile of peers");
}

function renderPositions(portfolio) {
  const body = document.querySelector("#positions tbody");
  if (!body) return;
  const rows = portfolio.positions.map((position) => {
    const row = document.createElement("tr");
    const cells = [
      [position.ticker, ""],
      [position.name, ""],
      [formatPercent(position.weight), "num"],
      [formatNumber(position.price), "num"],
      [formatChange(position.day), `num ${changeClass(position.day)}`],
    ];
    for (const [text, className] of cells) {
      const cell = document.createElement("td");
      cell.textContent = text;
      if (className) cell.className = className;
      row.append(cell);
    }
    return row;
  });
  body.replaceChildren(...rows);
}

function renderAllocation(portfolio) {
  const list = document.getElementById("allocation");
  if (!list) return;
  list.replaceChildren(
    ...portfolio.allocation.map((slice) => {
      const item = document.createElement("li");
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.style.width = `${(slice.weight * 100).toFixed(1)}%`;
      const label = document.createElement("span");
      label.textContent = slice.name;
      const value = document.createElement("span");
      value.className = "num";
      value.textContent = formatPercent(slice.weight);
      item.append(label, bar, value);
      return item;
    }),
  );
}

function renderChart(period) {
  const container = document.getElementById("performance-chart");
  if (!container) return;
  const days = PERIOD_DAYS[period] ?? PERIOD_DAYS["3M"];
  drawChart(container, [
    { name: "Portfolio", className: "series--portfolio", values: rebase(randomWalk(7, days, 0.0004, 0.018)) },
    { name: "Benchmark", className: "series--benchmark", values: rebase(randomWalk(11, days, 0.0003, 0.015)) },
  ]);
}

function bindPeriods() {
  const buttons = document.querySelectorAll("[data-period]");
  for (const button of buttons) {
    button.addEventListener("click", () => {
      for (const other of buttons) other.setAttribute("aria-pressed", String(other === button));
      renderChart(button.dataset.period);
    });
  }
}

function bindExport(portfolio) {
  const button = document.getElementById("export-csv");
  button?.addEventListener("click", async () => {
    // Loaded on demand: most visits never export.
    const { download, toCsv } = await import("./export.js");
    const columns = [
      { key: "ticker", label: "Ticker" },
      { key: "name", label: "Name" },
      { key: "weight", label: "Weight" },
      { key: "price", label: "Price" },
      { key: "day", label: "Day change" },
    ];
    download("positions.csv", toCsv(portfolio.positions, columns));
  });
}

renderFigures(PORTFOLIO);
renderPositions(PORTFOLIO);
renderAllocation(PORTFOLIO);
renderChart("3M");
bindPeriods();
bindExport(PORTFOLIO);
