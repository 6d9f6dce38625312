/** The MIME extensions: the run renderer (runview.ts) and `%wdl report`'s renderer (reportview.ts). */

import { IRenderMime } from '@jupyterlab/rendermime-interfaces';

import { REPORT_MIME, ReportRenderer } from './reportview';
import { RUN_MIME, RunRenderer } from './runview';

export const rendererFactory: IRenderMime.IRendererFactory = {
  safe: true, // builds DOM and SVG element by element from data, never parsing HTML, so untrusted notebooks show it too
  mimeTypes: [RUN_MIME],
  defaultRank: 10, // before text/html (the same summary as a fallback)
  createRenderer: options => new RunRenderer(options)
};

const extension: IRenderMime.IExtension = {
  id: 'miniwdl-jupyter:run-renderer',
  description: 'Renders the final summary of a miniwdl-jupyter run',
  rendererFactory,
  rank: 10,
  dataType: 'json'
};

export const reportRendererFactory: IRenderMime.IRendererFactory = {
  safe: true, // the same drawing from data as the run renderer's report section
  mimeTypes: [REPORT_MIME],
  defaultRank: 10, // before text/html (the same report, sanitized in an untrusted notebook)
  createRenderer: options => new ReportRenderer(options)
};

const reportExtension: IRenderMime.IExtension = {
  id: 'miniwdl-jupyter:report-renderer',
  description: 'Renders the run report of %wdl report',
  rendererFactory: reportRendererFactory,
  rank: 10,
  dataType: 'json'
};

export default [extension, reportExtension];
