/**
 * The runs sidebar: the runs under the run root of the open notebook's folder, read by the server
 * extension through `list_runs` and the monitor (the run directories stay the only source of
 * truth). Refreshes every 2 s while a run is active and it is visible, every 15 s otherwise.
 */

import { Clipboard } from '@jupyterlab/apputils';
import { PathExt } from '@jupyterlab/coreutils';
import { CommandRegistry } from '@lumino/commands';
import { Widget } from '@lumino/widgets';

import { badge, el, elapsed, humanBytes, when } from './format';
import { postJSON, requestAPI } from './request';

export const ACTIVE_REFRESH_MS = 2000;
export const IDLE_REFRESH_MS = 15000;

export interface IRunSummary {
  name: string;
  workflow: string;
  path: string | null; // run directory, relative to the server root (null: outside it)
  run_dir: string;
  status: string;
  active: boolean;
  backend: string | null;
  start_time: number | null;
  duration: number | null;
  calls_total: number;
  calls_done: number;
  calls_failed: number;
  size: number | null; // bytes on disk (kept once the run has ended)
  outputs_path: string | null;
  attach: string;
}

interface IRunsReply {
  folder: string;
  root: string;
  runs: IRunSummary[];
  more: number;
}

export class RunsPanel extends Widget {
  constructor(
    private commands: CommandRegistry,
    private folder: () => string
  ) {
    super();
    this.id = 'miniwdl-jupyter-runs';
    this.addClass('miniwdl-runs-panel');
    this.title.caption = 'WDL runs';
    const refresh = el('button', { className: 'jp-Button miniwdl-runs-refresh', text: 'Refresh', title: 'read the run directories again' });
    refresh.onclick = () => void this.refresh();
    this.where = el('div', { className: 'miniwdl-runs-where' });
    this.list = el('div', { className: 'miniwdl-runs-list' });
    this.message = el('div', { className: 'miniwdl-runs-message' });
    this.node.append(el('div', { className: 'miniwdl-runs-head' }, el('h2', { text: 'WDL runs' }), refresh), this.where, this.message, this.list);
  }

  /** Read the runs again (and schedule the next read). */
  async refresh(): Promise<void> {
    window.clearTimeout(this.timer);
    if (!this.isVisible || this.isDisposed) {
      return; // shown again: onAfterShow refreshes
    }
    const generation = ++this.generation; // a newer refresh schedules the next one, not this
    const folder = this.folder();
    let active = false;
    try {
      const reply = await requestAPI<IRunsReply>(`runs?path=${encodeURIComponent(folder)}`);
      if (generation !== this.generation) {
        return; // a newer refresh is under way (another folder, a cancel)
      }
      this.draw(reply);
      this.message.textContent = '';
      active = reply.runs.some(r => r.active);
    } catch (reason) {
      this.message.textContent = `could not list runs: ${reason}`;
    }
    if (!this.isDisposed && generation === this.generation) {
      this.timer = window.setTimeout(() => void this.refresh(), active ? ACTIVE_REFRESH_MS : IDLE_REFRESH_MS);
    }
  }

  protected onAfterShow(): void {
    void this.refresh();
  }

  dispose(): void {
    window.clearTimeout(this.timer);
    super.dispose();
  }

  private draw(reply: IRunsReply): void {
    this.where.textContent = '';
    this.where.append('run root: ', el('code', { text: reply.root || '.', title: `runs of the notebooks in ${reply.folder || 'the server root'}` }));
    this.list.textContent = '';
    if (!reply.runs.length) {
      this.list.append(el('p', { className: 'miniwdl-runs-empty', text: 'No runs yet. Run a %%wdl cell and it appears here.' }));
      return;
    }
    for (const run of reply.runs) {
      this.list.append(this.row(run));
    }
    if (reply.more) {
      this.list.append(el('p', { text: `... and ${reply.more} older runs (%wdl runs lists them all)` }));
    }
  }

  private row(run: IRunSummary): HTMLElement {
    const failed = run.calls_failed ? el('span', { className: 'miniwdl-runs-failed', text: ` · ${run.calls_failed} failed` }) : null;
    const actions = el('div', { className: 'miniwdl-runs-actions' });
    const action = (label: string, title: string, onClick: () => void, className = '') => {
      const button = el('button', { className: `jp-Button miniwdl-runs-action ${className}`, text: label, title });
      button.onclick = event => {
        event.stopPropagation();
        onClick();
      };
      actions.append(button);
      return button;
    };
    if (run.path) {
      action('folder', `open ${run.run_dir} in the file browser`, () => void this.commands.execute('filebrowser:go-to-path', { path: run.path! }));
    }
    if (run.outputs_path) {
      action('outputs', 'open the outputs folder', () => void this.commands.execute('filebrowser:go-to-path', { path: run.outputs_path! }));
    }
    action('copy attach', `copy "${run.attach}"`, () => Clipboard.copyToSystem(run.attach));
    if (run.active) {
      const cancel = action('cancel', 'stop this run (its containers stop)', () => void this.cancel(run, cancel), 'miniwdl-runs-cancel');
    }
    const node = el(
      'div',
      { className: `miniwdl-runs-row miniwdl-runs-${run.status}` },
      el('div', { className: 'miniwdl-runs-title' }, badge(run.status), ' ', el('b', { text: run.workflow || run.name, title: run.run_dir })),
      el(
        'div',
        { className: 'miniwdl-runs-facts' },
        `${run.backend || '-'} · ${when(run.start_time)} · ${elapsed(run.duration)} · ${run.calls_done}/${run.calls_total} calls · ${humanBytes(run.size)}`,
        failed
      ),
      el('div', { className: 'miniwdl-runs-name', text: run.path ? PathExt.basename(run.path) : run.name }),
      actions
    );
    node.dataset.run = run.name;
    return node;
  }

  private async cancel(run: IRunSummary, button: HTMLButtonElement): Promise<void> {
    button.disabled = true;
    button.textContent = 'cancelling...';
    try {
      await requestAPI('runs/cancel', postJSON({ path: run.path ?? run.run_dir }));
    } catch (reason) {
      this.message.textContent = `could not cancel ${run.name}: ${reason}`;
    }
    await this.refresh();
  }

  private where: HTMLElement;
  private list: HTMLElement;
  private message: HTMLElement;
  private timer = 0;
  private generation = 0;
}
