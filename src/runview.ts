/**
 * The run renderer: draws `application/vnd.miniwdl-jupyter.run+json`, the final summary a `%%wdl`
 * cell leaves (display/record.py writes it). It is declared safe: it builds DOM from text only
 * (no HTML from the record is parsed), so it renders in untrusted notebooks too, where JupyterLab
 * would otherwise fall back to sanitized HTML or plain text. An ended run's record carries its run
 * report as data, drawn as a folded section by report.ts (SVG made element by element).
 */

import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

import { badge, bar, countsLine, el, elapsed, when } from './format';
import { reportSection } from './report';
import { IRunReport } from './reportlayout';

export const RUN_MIME = 'application/vnd.miniwdl-jupyter.run+json';

export interface IRunRecord {
  version: number;
  name: string;
  run_dir: string;
  status: string;
  backend?: string | null;
  start_time?: number | null;
  duration?: number | null;
  calls: { total: number; finished: number; counts: Record<string, number> };
  groups?: { name: string; total: number; finished: number; counts: Record<string, number> }[];
  more_groups?: number;
  failure?: {
    call: string;
    state: string;
    exit_code?: number | null;
    reason?: string | null; // what the backend said: a time limit, out of memory
    log?: string | null;
    stderr?: string | null;
    stderr_tail?: string[];
    also_failed?: string[];
    more_failed?: number;
  } | null;
  error?: string | null;
  outputs?: { name: string; value: unknown }[] | null;
  more_outputs?: number;
  attach?: string;
  report?: IRunReport | null; // the run report as data (miniwdl_jupyter/report/plain.py)
  report_error?: string | null; // why there is none
}

interface IFileRef {
  $file: string;
  href?: string | null;
  size?: number | null;
}

function isFile(value: unknown): value is IFileRef {
  return typeof value === 'object' && value !== null && typeof (value as IFileRef).$file === 'string';
}

function unfinishedOrBad(counts: Record<string, number>): Record<string, number> {
  const picked: Record<string, number> = {};
  for (const s of ['running', 'retrying', 'failed', 'cancelled']) {
    picked[s] = counts[s] || 0;
  }
  return picked;
}

function baseName(path: string): string {
  return path.replace(/\/+$/, '').split('/').pop() || path;
}

export class RunRenderer extends Widget implements IRenderMime.IRenderer {
  constructor(private options: IRenderMime.IRendererOptions) {
    super();
    this.addClass('miniwdl-run-summary');
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const record = model.data[this.options.mimeType] as unknown as IRunRecord;
    this.node.textContent = '';
    if (!record || typeof record !== 'object') {
      this.node.textContent = 'miniwdl-jupyter: empty run record';
      return;
    }
    this.node.dataset.status = record.status;
    this.node.append(this.header(record), this.progress(record));
    if (record.groups && record.groups.length > 1) {
      this.node.append(this.groups(record));
    }
    if (record.failure) {
      this.node.append(this.failure(record));
    } else if (record.error) {
      this.node.append(el('div', { className: 'miniwdl-run-error', text: record.error }));
    }
    if (record.outputs && record.outputs.length) {
      this.node.append(await this.outputs(record));
    }
    if (record.report) {
      this.node.append(this.report(record.report));
    } else if (record.report_error) {
      this.node.append(el('div', { className: 'miniwdl-run-dir', text: `no run report: ${record.report_error}` }));
    }
    this.node.append(
      el('div', { className: 'miniwdl-run-dir' }, 'run directory: ', el('code', { text: record.run_dir }))
    );
  }

  /** The run report, or a line saying it could not be drawn: a record of another shape (hand-made,
   * or from another version) must not cost the rest of the summary. */
  private report(data: IRunReport): HTMLElement {
    try {
      return reportSection(data);
    } catch (error) {
      return el('div', { className: 'miniwdl-run-dir', text: `the run report could not be drawn: ${error}` });
    }
  }

  private header(r: IRunRecord): HTMLElement {
    return el(
      'div',
      { className: 'miniwdl-run-header' },
      el('b', { text: r.name }),
      ' ',
      el('code', { text: r.backend || '-' }),
      ' ',
      badge(r.status),
      ' ',
      el('span', { text: elapsed(r.duration), title: `started ${when(r.start_time)}` })
    );
  }

  private progress(r: IRunRecord): HTMLElement {
    const failed = r.calls.counts.failed || 0;
    return el(
      'div',
      { className: 'miniwdl-run-progress' },
      bar(r.calls.finished, r.calls.total, failed),
      ` ${r.calls.finished.toLocaleString()}/${r.calls.total.toLocaleString()} calls · `,
      countsLine(r.calls.counts)
    );
  }

  private groups(r: IRunRecord): HTMLElement {
    const table = el('table', { className: 'miniwdl-run-groups' });
    for (const g of r.groups ?? []) {
      table.append(
        el(
          'tr',
          {},
          el('td', {}, el('code', { text: g.name })),
          el('td', {}, bar(g.finished, g.total, g.counts.failed || 0)),
          el('td', { text: `${g.finished.toLocaleString()}/${g.total.toLocaleString()}` }),
          el('td', {}, countsLine(unfinishedOrBad(g.counts), ''))
        )
      );
    }
    if (r.more_groups) {
      table.append(el('tr', {}, el('td', { text: `... ${r.more_groups} more call names` })));
    }
    return table;
  }

  private failure(r: IRunRecord): HTMLElement {
    const f = r.failure!;
    const code = f.exit_code !== null && f.exit_code !== undefined ? ` (exit ${f.exit_code})` : '';
    const reason = f.reason ? `: ${f.reason}` : '';
    const node = el('div', { className: 'miniwdl-run-failure' }, el('b', { text: f.call }), ` ${f.state}${code}${reason}`);
    const where: (string | Node)[] = [];
    if (f.log) {
      where.push('log: ', el('code', { text: f.log }));
    }
    if (f.stderr) {
      where.push(where.length ? ' · stderr: ' : 'stderr: ', el('code', { text: f.stderr }));
    }
    if (where.length) {
      node.append(el('div', {}, ...where));
    }
    if (f.stderr_tail && f.stderr_tail.length) {
      node.append(el('pre', { text: f.stderr_tail.join('\n') }));
    }
    if (f.also_failed && f.also_failed.length) {
      const more = f.more_failed ? ` and ${f.more_failed.toLocaleString()} more` : '';
      node.append(el('div', {}, 'also failed: ', el('code', { text: f.also_failed.join(', ') + more })));
    }
    return node;
  }

  private async outputs(r: IRunRecord): Promise<HTMLElement> {
    const table = el('table', { className: 'miniwdl-run-outputs' });
    for (const output of r.outputs ?? []) {
      const cell = el('td');
      await this.value(output.value, cell);
      table.append(el('tr', {}, el('td', {}, el('code', { text: output.name })), cell));
    }
    if (r.more_outputs) {
      table.append(el('tr', {}, el('td', { text: `... ${r.more_outputs} more outputs` })));
    }
    return el('details', { className: 'miniwdl-run-outputs-box' }, el('summary', { text: `outputs (${(r.outputs ?? []).length})` }), table);
  }

  private async value(value: unknown, into: HTMLElement): Promise<void> {
    if (isFile(value)) {
      into.append(await this.fileLink(value));
    } else if (Array.isArray(value)) {
      const list = el('ol', { className: 'miniwdl-run-list' });
      list.start = 0;
      for (const item of value) {
        const li = el('li');
        await this.value(item, li);
        list.append(li);
      }
      into.append(list);
    } else if (value !== null && typeof value === 'object') {
      const table = el('table');
      for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
        const cell = el('td');
        await this.value(item, cell);
        table.append(el('tr', {}, el('td', {}, el('code', { text: key })), cell));
      }
      into.append(table);
    } else {
      into.append(el('code', { text: typeof value === 'string' ? value : JSON.stringify(value) }));
    }
  }

  /** A file: a link that opens it in JupyterLab when the server can serve it. */
  private async fileLink(file: IFileRef): Promise<HTMLElement> {
    const label = baseName(file.$file);
    const { resolver, linkHandler } = this.options;
    if (!file.href || !resolver) {
      return el('code', { text: label, title: file.$file });
    }
    const anchor = el('a', { text: label, title: file.$file });
    try {
      const urlPath = await resolver.resolveUrl(file.href);
      const path = decodeURIComponent(urlPath);
      if (linkHandler) {
        linkHandler.handleLink(anchor, path);
      }
      anchor.href = await resolver.getDownloadUrl(urlPath);
    } catch {
      return el('code', { text: label, title: file.$file });
    }
    return anchor;
  }
}
