// A dependency-free line chart in SVG: the portfolio against its benchmark, rebased to 100.

import { formatNumber } from "./format.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const PADDING = { top: 12, right: 48, bottom: 24, left: 8 };

function element(name, attributes = {}) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) {
    node.setAttribute(key, String(value));
  }
  return node;
}

/** Rebases a series so that its first value is 100. */
export function rebase(values) {
  const first = values[0];
  return values.map((value) => (value / first) * 100);
}

function extent(seriesList) {
  let low = Infinity;
  let high = -Infinity;
  for (const series of seriesList) {
    for (const value of series.values) {
      low = Math.min(low, value);
      high = Math.max(high, value);
    }
  }
  const margin = (high - low) * 0.08 || 1;
  return [low - margin, high + margin];
}

function pathFor(values, x, y) {
  return values.map((value, index) => `${index === 0 ? "M" : "L"}${x(index).toFixed(1)},${y(value).toFixed(1)}`).join("");
}

/**
 * Draws the series into `container`, replacing what was there.
 * @param {HTMLElement} container
 * @param {{ name: string, className: string, values: number[] }[]} seriesList
 */
export function drawChart(container, seriesList) {
  const width = container.clientWidth || 640;
  const height = container.clientHeight || 260;
  const [low, high] = extent(seriesList);
  const count = Math.max(...seriesList.map((series) => series.values.length));
  const plotWidth = width - PADDING.left - PADDING.right;
  const plotHeight = height - PADDING.top - PADDING.bottom;
  const x = (index) => PADDING.left + (index / Math.max(count - 1, 1)) * plotWidth;
  const y = (value) => PADDING.top + (1 - (value - low) / (high - low)) * plotHeight;

  const svg = element("svg", { viewBox: `0 0 ${width} ${height}`, role: "img" });
  for (const tick of [low, (low + high) / 2, high]) {
    svg.append(element("line", { x1: PADDING.left, x2: width - PADDING.right, y1: y(tick), y2: y(tick), stroke: "#2a3347" }));
    const label = element("text", { x: width - PADDING.right + 6, y: y(tick) + 4, fill: "#8b93a7", "font-size": 11 });
    label.textContent = formatNumber(tick, 1);
    svg.append(label);
  }
  for (const series of seriesList) {
    const path = element("path", { d: pathFor(series.values, x, y), class: `series ${series.className}` });
    const title = element("title");
    title.textContent = series.name;
    path.append(title);
    svg.append(path);
  }
  container.replaceChildren(svg);
  return svg;
}
