/**
 * Where the run report's pictures go: pixel positions for the timeline and the workflow graph,
 * from the report's plain data (the run record's `report` field, built by
 * miniwdl_jupyter/report/plain.py). No DOM here (report.ts draws what this places), so jest tests
 * it. Sizes and colours are report.html's (miniwdl_jupyter/report/timeline.py, graph.py, svg.py).
 */

import { STATE_COLOURS } from './format';

export const LABEL_WIDTH = 190;
export const PLOT_WIDTH = 760;
export const ROW = 16;
export const NODE_WIDTH = 180;
export const COLUMN_GAP = 50;
export const LINE = 16;
export const WAITING_COLOUR = '#cfd8dc';

export interface IReportBar {
  kind: 'waiting' | 'attempt' | 'cached';
  call: string;
  start: number; // seconds from the run's first ready call
  end: number;
  state: string;
  tip: string;
  critical?: boolean;
  attempt?: number;
}

export interface IReportTimeline {
  seconds: number;
  ticks: { at: number; label: string }[];
  legend: string;
  rows: { label: string; calls: number; bars: IReportBar[] }[];
  more_rows: number;
  more_bars: number;
}

export interface IReportNode {
  id: string;
  label: string;
  group: boolean;
  layer: number;
  after: string[];
  state: string;
  counts: string;
  lines: { name: string; state: string; counts: string }[];
  more: number;
}

export interface IRunReport {
  version: number;
  calls: number;
  duration: string;
  cpu_hours: number;
  usage_missing: number;
  usage_missing_why?: string | null;
  advice: string[];
  more_advice: number;
  critical_path: string[];
  more_critical: number;
  timeline: IReportTimeline | null;
  usage: { head: string[]; rows: { name: string; cells: string[] }[]; more: number };
  graph: { nodes: IReportNode[]; more: number; missing?: string | null };
}

/** The report data versions this renderer draws. */
export const REPORT_VERSIONS = [1];

/** A state's colour; anything else (a record from elsewhere) grey, never a prototype's property. */
export function colour(state: string): string {
  return Object.prototype.hasOwnProperty.call(STATE_COLOURS, state) ? STATE_COLOURS[state] : '#555';
}

/** Text cut to `limit` characters with an ellipsis, as report.html's graph cuts it. */
export function fit(text: string, limit = 28): string {
  return text.length <= limit ? text : text.slice(0, limit - 1) + '…';
}

export interface IMark {
  shape: 'rect' | 'diamond';
  x: number;
  y: number;
  width: number;
  height: number;
  fill: string;
  faint: boolean; // one of many calls drawn over each other in a band
  outlined: boolean; // on the critical path
  bar: IReportBar;
}

export interface ITimelineLayout {
  width: number;
  height: number;
  labels: { x: number; y: number; text: string }[];
  marks: IMark[];
  axisY: number;
  ticks: { x: number; label: string }[];
}

export function layoutTimeline(t: IReportTimeline): ITimelineLayout {
  const scale = PLOT_WIDTH / Math.max(t.seconds, 1e-9);
  const xOf = (s: number) => LABEL_WIDTH + s * scale;
  const labels: ITimelineLayout['labels'] = [];
  const marks: IMark[] = [];
  t.rows.forEach((row, i) => {
    const y = 4 + i * ROW;
    const faint = row.calls > 1;
    labels.push({ x: LABEL_WIDTH - 6, y: y + 11, text: row.label });
    for (const bar of row.bars) {
      const x = xOf(bar.start);
      const outlined = !!bar.critical;
      if (bar.kind === 'cached') {
        marks.push({ shape: 'diamond', x, y: y + 2, width: 10, height: 10, fill: colour('cached'), faint: false, outlined, bar });
      } else if (bar.kind === 'waiting') {
        const width = Math.max(0.5, (bar.end - bar.start) * scale);
        marks.push({ shape: 'rect', x, y: y + 4, width, height: 6, fill: WAITING_COLOUR, faint, outlined: false, bar });
      } else {
        const width = Math.max(1, (bar.end - bar.start) * scale);
        marks.push({ shape: 'rect', x, y: y + 1, width, height: 12, fill: colour(bar.state), faint, outlined, bar });
      }
    }
  });
  const axisY = 8 + t.rows.length * ROW;
  return {
    width: LABEL_WIDTH + PLOT_WIDTH + 20,
    height: axisY + 22,
    labels,
    marks,
    axisY,
    ticks: t.ticks.map(tick => ({ x: xOf(tick.at), label: tick.label }))
  };
}

export interface INodeBox {
  node: IReportNode;
  x: number;
  y: number;
  height: number;
}

export interface IGraphLayout {
  width: number;
  height: number;
  boxes: INodeBox[];
  edges: { from: string; to: string; d: string }[];
}

/** Columns by layer (a node's longest path from a source), nodes stacked down each column. */
export function layoutGraph(nodes: IReportNode[]): IGraphLayout {
  const boxes = new Map<string, INodeBox>();
  const nextY = new Map<number, number>();
  let height = 0;
  let layers = 0;
  for (const node of nodes) {
    const x = 8 + node.layer * (NODE_WIDTH + COLUMN_GAP);
    const y = nextY.get(node.layer) ?? 8;
    const h = LINE * (1.6 + node.lines.length + (node.more ? 1 : 0));
    boxes.set(node.id, { node, x, y, height: h });
    nextY.set(node.layer, y + h + 14);
    height = Math.max(height, y + h + 14);
    layers = Math.max(layers, node.layer + 1);
  }
  const edges: IGraphLayout['edges'] = [];
  for (const node of nodes) {
    const to = boxes.get(node.id)!;
    for (const dep of [...node.after].sort()) {
      const from = boxes.get(dep);
      if (!from) {
        continue;
      }
      const y1 = Math.round(from.y + from.height / 2);
      const y2 = Math.round(to.y + to.height / 2);
      const x1 = from.x + NODE_WIDTH;
      edges.push({
        from: dep,
        to: node.id,
        d: `M${x1} ${y1} C${x1 + COLUMN_GAP / 2} ${y1} ${to.x - COLUMN_GAP / 2} ${y2} ${to.x} ${y2}`
      });
    }
  }
  return { width: 16 + layers * (NODE_WIDTH + COLUMN_GAP), height, boxes: [...boxes.values()], edges };
}
