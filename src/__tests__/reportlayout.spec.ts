/**
 * The run report's pictures are placed as report.html places them (miniwdl_jupyter/report/
 * timeline.py and graph.py): the same scale, rows, marks, colours and columns.
 */

import { IReportNode, IReportTimeline, LABEL_WIDTH, PLOT_WIDTH, colour, fit, layoutGraph, layoutTimeline } from '../reportlayout';

const timeline: IReportTimeline = {
  seconds: 10,
  ticks: [
    { at: 0, label: '0s' },
    { at: 5, label: '5s' },
    { at: 10, label: '10s' }
  ],
  legend: '',
  rows: [
    {
      label: 'call-a',
      calls: 1,
      bars: [
        { kind: 'waiting', call: 'call-a', start: 0, end: 1, state: 'waiting', tip: '' },
        { kind: 'attempt', call: 'call-a', start: 1, end: 3, state: 'retrying', tip: '', attempt: 1 },
        { kind: 'attempt', call: 'call-a', start: 3, end: 5, state: 'succeeded', tip: '', attempt: 2, critical: true }
      ]
    },
    { label: 'b (2)', calls: 2, bars: [{ kind: 'attempt', call: 'call-b-0', start: 5, end: 10, state: 'failed', tip: '' }] },
    { label: 'call-c', calls: 1, bars: [{ kind: 'cached', call: 'call-c', start: 0, end: 0, state: 'cached', tip: '' }] }
  ],
  more_rows: 0,
  more_bars: 0
};

describe('layoutTimeline', () => {
  const layout = layoutTimeline(timeline);
  it('scales seconds onto the plot and stacks one row per call or band', () => {
    const [waiting, first, last] = layout.marks;
    expect(waiting.x).toBe(LABEL_WIDTH);
    expect(waiting.height).toBe(6);
    expect(first.x).toBeCloseTo(LABEL_WIDTH + PLOT_WIDTH / 10);
    expect(first.width).toBeCloseTo((2 * PLOT_WIDTH) / 10);
    expect(layout.marks[3].y).toBe(4 + 16 + 1);
    expect(layout.ticks.map(t => t.x)).toEqual([LABEL_WIDTH, LABEL_WIDTH + PLOT_WIDTH / 2, LABEL_WIDTH + PLOT_WIDTH]);
    expect(layout.axisY).toBe(8 + 3 * 16);
    expect(last.fill).toBe('#2e7d32');
  });
  it('colours a retried attempt, outlines the critical path, draws a band faint and a cached call as a diamond', () => {
    const [waiting, first, last, band, cached] = layout.marks;
    expect(waiting.fill).toBe('#cfd8dc');
    expect(first.fill).toBe('#f57c00');
    expect([first.outlined, last.outlined]).toEqual([false, true]);
    expect([last.faint, band.faint]).toEqual([false, true]);
    expect(band.fill).toBe('#c62828');
    expect(cached.shape).toBe('diamond');
    expect(cached.fill).toBe('#00897b');
  });
});

describe('layoutGraph', () => {
  const node = (id: string, layer: number, after: string[], lines = 0): IReportNode => ({
    id,
    label: `call ${id}`,
    group: false,
    layer,
    after,
    state: 'succeeded',
    counts: '1 succeeded',
    lines: Array.from({ length: lines }, (_, i) => ({ name: `x${i}`, state: 'succeeded', counts: '1 succeeded' })),
    more: 0
  });
  it('puts a node in its layer column, under the one before it, with an edge from its input', () => {
    const layout = layoutGraph([node('a', 0, []), node('s', 0, [], 2), node('b', 1, ['a', 's'])]);
    const [a, s, b] = layout.boxes;
    expect([a.x, a.y, b.x]).toEqual([8, 8, 8 + 230]);
    expect(s.y).toBeCloseTo(8 + 16 * 1.6 + 14);
    expect(s.height).toBeCloseTo(16 * 3.6);
    expect(layout.edges.map(e => `${e.from}->${e.to}`)).toEqual(['a->b', 's->b']);
    expect(layout.edges[0].d.startsWith(`M${8 + 180} `)).toBe(true);
    expect(layout.width).toBe(16 + 2 * 230);
  });
  it('ignores an edge to a node left out of a capped graph', () => {
    expect(layoutGraph([node('b', 1, ['gone'])]).edges).toEqual([]);
  });
});

describe('fit', () => {
  it('cuts long labels with an ellipsis as report.html does', () => {
    expect(fit('scatter (sample in samples_to_align)')).toBe('scatter (sample in samples_…');
    expect(fit('call greet')).toBe('call greet');
  });
});

describe('colour', () => {
  it("gives a state report.html's colour and anything else grey", () => {
    expect(colour('running')).toBe('#1976d2');
    expect(colour('__proto__')).toBe('#555');
    expect(colour('toString')).toBe('#555');
  });
});
