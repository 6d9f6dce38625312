/**
 * The renderer of `%wdl report`'s output (`application/vnd.miniwdl-jupyter.report+json`, written by
 * miniwdl_jupyter/display/report.py): the run report drawn from its data by report.ts, unfolded.
 * Declared safe like the run renderer: JupyterLab shows the HTML beside it sanitized in an
 * untrusted notebook, which drops its SVG pictures; this draws them from data.
 */

import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

import { badge, el } from './format';
import { reportSection } from './report';
import { IRunReport } from './reportlayout';

export const REPORT_MIME = 'application/vnd.miniwdl-jupyter.report+json';

interface IReportOutput {
  name: string;
  status: string;
  run_dir: string;
  report: IRunReport;
}

export class ReportRenderer extends Widget implements IRenderMime.IRenderer {
  constructor(private options: IRenderMime.IRendererOptions) {
    super();
    this.addClass('miniwdl-run-summary');
    this.addClass('miniwdl-report-output');
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const data = model.data[this.options.mimeType] as unknown as IReportOutput;
    this.node.textContent = '';
    if (!data || typeof data !== 'object' || !data.report) {
      this.node.textContent = 'miniwdl-jupyter: empty run report';
      return;
    }
    this.node.append(el('div', { className: 'miniwdl-run-header' }, el('b', { text: `Run report: ${data.name}` }), ' ', badge(String(data.status))));
    try {
      this.node.append(reportSection(data.report, true));
    } catch (error) {
      this.node.append(el('div', { className: 'miniwdl-run-dir', text: `the run report could not be drawn: ${error}` }));
    }
    this.node.append(el('div', { className: 'miniwdl-run-dir' }, 'run directory: ', el('code', { text: String(data.run_dir) })));
  }
}
