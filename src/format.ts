/** Shared wording and colours of run states (the same as the Python views: display/summary.py). */

export const STATE_COLOURS: Record<string, string> = {
  queued: '#9e9e9e',
  running: '#1976d2',
  retrying: '#f57c00',
  succeeded: '#2e7d32',
  cached: '#00897b',
  failed: '#c62828',
  cancelled: '#6d4c41'
};
export const CALL_STATES = ['queued', 'running', 'retrying', 'succeeded', 'cached', 'failed', 'cancelled'];

export function elapsed(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) {
    return '-';
  }
  const s = Math.floor(seconds);
  const two = (n: number) => String(n).padStart(2, '0');
  return s >= 3600 ? `${Math.floor(s / 3600)}:${two(Math.floor(s / 60) % 60)}:${two(s % 60)}` : `${Math.floor(s / 60)}:${two(s % 60)}`;
}

export function when(epochSeconds: number | null | undefined): string {
  if (!epochSeconds) {
    return '-';
  }
  const d = new Date(epochSeconds * 1000);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}`;
}

/** An element with text content only (nothing from a run is ever parsed as HTML). */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: { className?: string; text?: string; title?: string } = {},
  ...children: (Node | string | null | undefined)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (props.className) {
    node.className = props.className;
  }
  if (props.text !== undefined) {
    node.textContent = props.text;
  }
  if (props.title) {
    node.title = props.title;
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(child);
    }
  }
  return node;
}

export function badge(status: string): HTMLElement {
  const node = el('span', { className: `miniwdl-badge miniwdl-status-${status}`, text: status });
  node.style.background = STATE_COLOURS[status] ?? '#555';
  return node;
}

export function countsLine(counts: Record<string, number>, none = 'no calls yet'): HTMLElement {
  const node = el('span', { className: 'miniwdl-counts' });
  const parts = CALL_STATES.filter(s => counts[s]);
  if (!parts.length) {
    node.textContent = none;
  }
  parts.forEach((s, i) => {
    const part = el('span', { text: `${counts[s].toLocaleString()} ${s}` });
    part.style.color = STATE_COLOURS[s];
    node.append(part);
    if (i < parts.length - 1) {
      node.append(', ');
    }
  });
  return node;
}

export function bar(done: number, total: number, failed: number): HTMLElement {
  const node = el('span', { className: 'miniwdl-bar' });
  const ok = el('span', { className: 'miniwdl-bar-ok' });
  const bad = el('span', { className: 'miniwdl-bar-failed' });
  ok.style.width = `${total ? (100 * (done - failed)) / total : 0}%`;
  bad.style.width = `${total ? (100 * failed) / total : 0}%`;
  node.append(ok, bad);
  return node;
}

/** 1.2 GB, 340 MB, 12 kB, 512 B: decimal units, as `%wdl runs` (disk_usage.human) prints them. */
export function humanBytes(n: number | null): string {
  if (n === null || n === undefined) {
    return '-';
  }
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = n;
  for (const unit of units) {
    if (Math.abs(value) < 1000 || unit === 'TB') {
      return unit === 'B' ? `${Math.trunc(value)} B` : `${value.toFixed(1)} ${unit}`;
    }
    value /= 1000;
  }
  return `${n} B`;
}
