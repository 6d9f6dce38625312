/** The MIME extension: registers the run renderer (see runview.ts). */

import { IRenderMime } from '@jupyterlab/rendermime-interfaces';

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

export default extension;
