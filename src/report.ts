/**
 * The run report inside the run renderer: a folded section with the rightsizing lines, the timeline,
 * the usage against requests and the workflow graph, drawn from the run record's `report` data.
 * Every element is made with createElement/createElementNS and filled with textContent or with
 * numbers and colours of our own, never by parsing a string from the record, so the renderer stays
 * safe for untrusted notebooks. It looks like report.html (the same sizes and colours).
 */

import { el } from './format';
import {
  IRunReport,
  IReportTimeline,
  IReportNode,
  LABEL_WIDTH,
  LINE,
  NODE_WIDTH,
  PLOT_WIDTH,
  REPORT_VERSIONS,
  colour,
  fit,
  layoutGraph,
  layoutTimeline
} from './reportlayout';

const SVG_NS = 'http://www.w3.org/2000/svg';
let drawnGraphs = 0; // each graph's arrowhead marker gets its own id

function svgEl<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attributes: Record<string, string | number>,
  ...children: (Node | null)[]
): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) {
    node.setAttribute(name, typeof value === 'number' ? String(Math.round(value * 10) / 10) : value);
  }
  for (const child of children) {
    if (child) {
      node.append(child);
    }
  }
  return node;
}

function svgText(text: string, attributes: Record<string, string | number>): SVGTextElement {
  const node = svgEl('text', attributes);
  node.textContent = text;
  return node;
}

/** A hover tooltip, as report.html's <title> elements. */
function tooltip(text: string): SVGTitleElement {
  const node = svgEl('title', {});
  node.textContent = text;
  return node;
}

function picture(width: number, height: number, label: string, className: string): SVGSVGElement {
  return svgEl('svg', {
    width: Math.round(width),
    height: Math.round(height),
    viewBox: `0 0 ${Math.round(width)} ${Math.round(height)}`,
    role: 'img',
    'aria-label': label,
    class: className,
    'font-family': 'sans-serif',
    'font-size': 11
  });
}

export function timelineSvg(t: IReportTimeline): SVGSVGElement {
  const layout = layoutTimeline(t);
  const root = picture(layout.width, layout.height, "timeline of the run's calls", 'miniwdl-report-timeline');
  for (const label of layout.labels) {
    root.append(svgText(label.text, { x: label.x, y: label.y, 'text-anchor': 'end' }));
  }
  for (const mark of layout.marks) {
    const common: Record<string, string | number> = { fill: mark.fill, class: `miniwdl-report-bar miniwdl-report-${mark.bar.kind}` };
    if (mark.faint) {
      common['fill-opacity'] = 0.35;
    }
    if (mark.outlined) {
      common.stroke = '#000';
      common['stroke-width'] = 1.5;
    }
    const shape =
      mark.shape === 'diamond'
        ? svgEl('path', { d: `M${mark.x.toFixed(1)} ${mark.y} l5 5 l-5 5 l-5 -5 z`, ...common })
        : svgEl('rect', { x: mark.x, y: mark.y, width: mark.width, height: mark.height, ...common });
    shape.dataset.call = mark.bar.call;
    shape.append(tooltip(mark.bar.tip));
    root.append(shape);
  }
  root.append(svgEl('line', { x1: LABEL_WIDTH, y1: layout.axisY, x2: LABEL_WIDTH + PLOT_WIDTH, y2: layout.axisY, stroke: '#888' }));
  for (const tick of layout.ticks) {
    root.append(svgEl('line', { x1: tick.x, y1: layout.axisY, x2: tick.x, y2: layout.axisY + 4, stroke: '#888' }));
    root.append(svgText(tick.label, { x: tick.x, y: layout.axisY + 15, 'text-anchor': 'middle', fill: '#555' }));
  }
  return root;
}

function nodeGroup(node: IReportNode, x: number, y: number, height: number): SVGGElement {
  const fill = colour(node.state);
  const box = svgEl('rect', {
    x,
    y,
    width: NODE_WIDTH,
    height: Math.round(height),
    rx: node.group ? 3 : 8,
    fill,
    'fill-opacity': node.group ? 0.15 : 0.9,
    stroke: fill
  });
  if (node.group) {
    box.setAttribute('stroke-dasharray', '4 2');
  }
  const g = svgEl(
    'g',
    { class: 'miniwdl-report-node' },
    tooltip(`${node.label}: ${node.counts}`),
    box,
    svgText(fit(node.label), { x: x + 6, y: y + LINE, fill: node.group ? '#222' : '#fff', 'font-weight': 'bold' })
  );
  g.dataset.node = node.id;
  g.dataset.state = node.state;
  node.lines.forEach((line, i) => {
    const ty = y + LINE * (2 + i);
    g.append(svgEl('rect', { x: x + 6, y: ty - 9, width: 10, height: 10, fill: colour(line.state) }));
    g.append(svgText(fit(`${line.name} ${line.counts}`, 26), { x: x + 20, y: ty }));
  });
  if (node.more) {
    g.append(svgText(`... ${node.more} more calls`, { x: x + 6, y: y + LINE * (2 + node.lines.length), fill: '#555' }));
  }
  return g;
}

export function graphSvg(nodes: IReportNode[]): SVGSVGElement {
  const layout = layoutGraph(nodes);
  const root = picture(layout.width, layout.height, 'workflow graph', 'miniwdl-report-graph');
  const arrow = `miniwdl-report-arrow-${++drawnGraphs}`;
  root.append(
    svgEl(
      'defs',
      {},
      svgEl(
        'marker',
        { id: arrow, viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 6, markerHeight: 6, orient: 'auto' },
        svgEl('path', { d: 'M0 0 L10 5 L0 10 z', fill: '#777' })
      )
    )
  );
  for (const box of layout.boxes) {
    root.append(nodeGroup(box.node, box.x, box.y, box.height));
  }
  for (const edge of layout.edges) {
    const path = svgEl('path', { d: edge.d, fill: 'none', stroke: '#777', 'marker-end': `url(#${arrow})`, class: 'miniwdl-report-edge' });
    root.append(path);
  }
  return root;
}

function usageTable(report: IRunReport): HTMLTableElement {
  const table = el('table', { className: 'miniwdl-report-usage' });
  table.append(el('tr', {}, ...report.usage.head.map(h => el('th', { text: h }))));
  for (const row of report.usage.rows) {
    const tr = el('tr', { className: 'miniwdl-report-task' }, ...row.cells.map(cell => el('td', { text: cell })));
    tr.dataset.task = row.name;
    table.append(tr);
  }
  if (report.usage.more) {
    table.append(el('tr', {}, el('td', { text: `... ${report.usage.more.toLocaleString()} more tasks` })));
  }
  return table;
}

function leftOut(text: string): HTMLElement {
  return el('div', { className: 'miniwdl-report-more', text });
}

/** The "run report" section: folded in the run renderer, open for `%wdl report` (reportview.ts). */
export function reportSection(report: IRunReport, open = false): HTMLDetailsElement {
  const section = el('details', { className: 'miniwdl-report' }, el('summary', { text: 'run report: time, usage, graph' }));
  section.open = open;
  if (!REPORT_VERSIONS.includes(report.version)) {
    section.append(el('div', { text: `this run report's data (version ${report.version}) is newer than this extension: use %wdl report` }));
    return section;
  }
  section.append(
    el('div', { className: 'miniwdl-report-facts', text: `${report.calls.toLocaleString()} task calls; ${report.duration}; ${report.cpu_hours.toFixed(3)} CPU-hours` })
  );
  if (report.usage_missing) {
    section.append(
      el('div', { className: 'miniwdl-report-missing' }, el('b', { text: `Usage is missing for ${report.usage_missing.toLocaleString()} call(s)` }), `: ${report.usage_missing_why ?? ''}`)
    );
  }
  if (report.advice.length) {
    const list = el('ul', { className: 'miniwdl-report-advice' }, ...report.advice.map(line => el('li', { text: line })));
    if (report.more_advice) {
      list.append(el('li', { text: `... ${report.more_advice} more` }));
    }
    section.append(el('h4', { text: 'Rightsizing' }), list);
  }
  section.append(el('h4', { text: 'Timeline' }));
  if (report.timeline) {
    const t = report.timeline;
    section.append(el('div', { className: 'miniwdl-report-legend', text: t.legend }), el('div', { className: 'miniwdl-report-scroll' }, timelineSvg(t)));
    if (t.more_rows || t.more_bars) {
      section.append(leftOut(`left out to keep the notebook small: ${t.more_rows.toLocaleString()} rows, ${t.more_bars.toLocaleString()} bars (report.html in the run directory has them all)`));
    }
  } else {
    section.append(el('div', { text: 'no calls' }));
  }
  if (report.critical_path.length) {
    const more = report.more_critical ? ` ... (${report.more_critical} more)` : '';
    section.append(el('div', { className: 'miniwdl-report-critical', text: `critical path: ${report.critical_path.join(' -> ')}${more}` }));
  }
  section.append(el('h4', { text: 'Usage against requests' }), usageTable(report));
  section.append(el('h4', { text: 'Workflow graph' }));
  if (report.graph.nodes.length) {
    section.append(el('div', { className: 'miniwdl-report-scroll' }, graphSvg(report.graph.nodes)));
    if (report.graph.more) {
      section.append(leftOut(`left out to keep the notebook small: ${report.graph.more.toLocaleString()} nodes (report.html in the run directory has them all)`));
    }
  } else {
    section.append(el('div', { text: report.graph.missing || 'no workflow graph' }));
  }
  return section;
}
