/**
 * miniwdl-jupyter's JupyterLab plugins:
 * - the WDL language (`text/x-wdl`) in the editor language registry: .wdl files open highlighted;
 * - `%%wdl` notebook cells switch to it while their first line is the magic, and back after;
 * - diagnostics from the server's `check` in those cells and in .wdl files;
 * - completion, hover, go to definition and failure marks there (editing.ts);
 * - the runs sidebar.
 * The run renderer is a MIME extension of its own (mime.ts).
 */

import { ILabShell, ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { PathExt } from '@jupyterlab/coreutils';
import { EditorExtensionRegistry, IEditorExtensionRegistry, IEditorLanguageRegistry } from '@jupyterlab/codemirror';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { IEditorTracker } from '@jupyterlab/fileeditor';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ICellModel } from '@jupyterlab/cells';
import { LabIcon } from '@jupyterlab/ui-components';

import { editorContexts, wdlDiagnostics } from './diagnostics';
import { registerWdlEditing } from './editing';
import { isWdlCell, wdl, WDL_MIME } from './language';
import { postJSON, requestAPI } from './request';
import { RunsPanel } from './sidebar';

const WDL_ICON = new LabIcon({
  name: 'miniwdl-jupyter:wdl',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
    '<path d="M3 5h18v2H3zM3 11h12v2H3zM3 17h18v2H3z"/><circle cx="19" cy="12" r="2"/></g></svg>'
});

const languagePlugin: JupyterFrontEndPlugin<void> = {
  id: 'miniwdl-jupyter:language',
  description: 'WDL highlighting and diagnostics in .wdl files and %%wdl cells',
  autoStart: true,
  requires: [IEditorLanguageRegistry, IEditorExtensionRegistry],
  optional: [INotebookTracker, IEditorTracker],
  activate: (
    app: JupyterFrontEnd,
    languages: IEditorLanguageRegistry,
    extensions: IEditorExtensionRegistry,
    notebooks: INotebookTracker | null,
    editors: IEditorTracker | null
  ) => {
    languages.addLanguage({ name: 'WDL', displayName: 'WDL', mime: WDL_MIME, extensions: ['wdl'], support: wdl() });
    app.docRegistry.addFileType({
      name: 'wdl',
      displayName: 'WDL',
      extensions: ['.wdl'],
      mimeTypes: [WDL_MIME],
      fileFormat: 'text',
      contentType: 'file',
      icon: WDL_ICON
    });
    extensions.addExtension({
      name: 'miniwdl-jupyter:diagnostics',
      factory: options => EditorExtensionRegistry.createImmutableExtension(wdlDiagnostics(options.model))
    });
    registerWdlEditing(app, extensions, notebooks);
    notebooks?.widgetAdded.connect((_, panel) => followNotebook(panel, languages));
    editors?.widgetAdded.connect((_, widget) => {
      editorContexts.set(widget.content.model, { kind: 'file', path: () => widget.context.path });
    });
  }
};

/** Keep each code cell's language in step with its first line. */
function followNotebook(panel: NotebookPanel, languages: IEditorLanguageRegistry): void {
  const notebook = panel.content;
  const follow = (cell: ICellModel) => {
    if (cell.type !== 'code' || followed.has(cell)) {
      return;
    }
    followed.add(cell);
    editorContexts.set(cell, { kind: 'cell', path: () => panel.context.path });
    const sync = () => {
      if (cell.isDisposed) {
        return;
      }
      const wanted = isWdlCell(cell.sharedModel.getSource()) ? WDL_MIME : notebook.codeMimetype;
      if (cell.mimeType !== wanted) {
        cell.mimeType = wanted; // the cell's editor reconfigures its language on this change
      }
    };
    cell.contentChanged.connect(sync);
    // The notebook resets every code cell to the kernel's language when it learns it: redo ours,
    // once that language has loaded. The editor applies each change when its language is ready,
    // so switching back at once would let a slower-loading Python win the race.
    cell.mimeTypeChanged.connect((_, change) => {
      if (change.newValue !== WDL_MIME && isWdlCell(cell.sharedModel.getSource())) {
        void languages
          .getLanguage(change.newValue)
          .catch(() => null)
          .then(() => window.setTimeout(sync, 0));
      }
    });
    sync();
  };
  const followAll = () => {
    const cells = notebook.model?.cells;
    if (!cells) {
      return;
    }
    for (let i = 0; i < cells.length; i++) {
      follow(cells.get(i));
    }
  };
  void panel.context.ready.then(() => {
    followAll();
    notebook.model?.cells.changed.connect(followAll);
  });
  notebook.modelChanged.connect(followAll);
}
const followed = new WeakSet<ICellModel>();

const runsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'miniwdl-jupyter:runs',
  description: 'A sidebar listing the WDL runs of the current folder',
  autoStart: true,
  requires: [ILabShell],
  optional: [INotebookTracker, IDefaultFileBrowser, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    shell: ILabShell,
    notebooks: INotebookTracker | null,
    browser: IDefaultFileBrowser | null,
    restorer: ILayoutRestorer | null
  ) => {
    // The runs of the current notebook's folder; without a notebook, the file browser's.
    const folder = () => {
      const current = notebooks?.currentWidget;
      if (current) {
        return PathExt.dirname(current.context.path);
      }
      return browser?.model.path ?? '';
    };
    const panel = new RunsPanel(app.commands, folder);
    panel.title.icon = WDL_ICON;
    shell.add(panel, 'left', { rank: 650 });
    restorer?.add(panel, panel.id);
    notebooks?.currentChanged.connect(() => void panel.refresh());
    // A live run widget's Cancel button: the kernel would see the click only after the cell that
    // waits for the run returns, so cancel through the server now (the kernel's wait then ends).
    document.addEventListener('click', event => {
      const button = (event.target as HTMLElement | null)?.closest?.('.miniwdl-run-widget .miniwdl-cancel-button');
      const runDir = button?.closest('.miniwdl-run-widget')?.querySelector('[data-run-dir]')?.getAttribute('data-run-dir');
      if (button && runDir) {
        void requestAPI('runs/cancel', postJSON({ path: runDir }))
          .then(() => panel.refresh())
          .catch(reason => console.warn('miniwdl-jupyter: cancel failed', reason));
      }
    });
    app.commands.addCommand('miniwdl-jupyter:show-runs', {
      label: 'Show WDL runs',
      execute: () => shell.activateById(panel.id)
    });
  }
};

export default [languagePlugin, runsPlugin];
