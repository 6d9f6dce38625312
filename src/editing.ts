/**
 * WDL editing beyond highlighting and diagnostics, registered as editor extensions: completion,
 * hover, go to definition, and failure marks after a cell's run failed (see each module).
 * Extensions act only on editors holding WDL: the language service answers nothing for others.
 */

import { JupyterFrontEnd } from '@jupyterlab/application';
import { ICellModel } from '@jupyterlab/cells';
import { CodeMirrorEditor, EditorExtensionRegistry, IEditorExtensionRegistry } from '@jupyterlab/codemirror';
import { FileEditor } from '@jupyterlab/fileeditor';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';

import { cellKernels, wdlCompletion } from './completion';
import { failureMarks, showFailure } from './failures';
import { IDefinition, wdlDefinition, wdlHover } from './navigation';
import { RUN_MIME } from './runview';

export function registerWdlEditing(
  app: JupyterFrontEnd,
  extensions: IEditorExtensionRegistry,
  notebooks: INotebookTracker | null
): void {
  const open = (found: IDefinition) => void openDefinition(app, found);
  extensions.addExtension({
    name: 'miniwdl-jupyter:editing',
    factory: options =>
      EditorExtensionRegistry.createImmutableExtension([
        wdlCompletion(options.model),
        wdlHover(options.model),
        wdlDefinition(options.model, open),
        failureMarks
      ])
  });
  notebooks?.widgetAdded.connect((_, panel) => followRuns(panel));
}

/** Open a definition in another file at its line (an http(s) import: its URL in a new tab). */
async function openDefinition(app: JupyterFrontEnd, found: IDefinition): Promise<void> {
  if (found.url) {
    window.open(found.url, '_blank', 'noopener');
    return;
  }
  if (!found.path) {
    console.warn(`miniwdl-jupyter: ${found.abspath} is outside the server's root directory`);
    return;
  }
  const widget = (await app.commands.execute('docmanager:open', { path: found.path })) as
    | { context: { ready: Promise<void> }; content: FileEditor }
    | undefined;
  if (!widget) {
    return;
  }
  await widget.context.ready;
  const editor = widget.content.editor;
  const position = { line: found.line - 1, column: Math.max(found.column - 1, 0) };
  editor.setCursorPosition(position);
  editor.revealPosition(position);
  editor.focus();
}

/** Give each code cell's completion the notebook's kernel, and mark where a cell's run failed. */
function followRuns(panel: NotebookPanel): void {
  const seen = new WeakSet<ICellModel>();
  const follow = () => {
    const cells = panel.content.model?.cells;
    for (let i = 0; cells && i < cells.length; i++) {
      const cell = cells.get(i);
      if (cell.type !== 'code' || seen.has(cell)) {
        continue;
      }
      seen.add(cell);
      cellKernels.set(cell, () => panel.sessionContext.session?.kernel);
      const outputs = (cell as unknown as { outputs: { changed: any; length: number; get: (i: number) => any } }).outputs;
      outputs.changed.connect(() => {
        for (let j = 0; j < outputs.length; j++) {
          const record = outputs.get(j).data[RUN_MIME] as { status?: string; run_dir?: string } | undefined;
          if (record && record.status === 'failed' && record.run_dir) {
            const widget = panel.content.widgets.find(w => w.model === cell);
            const editor = widget?.editor as CodeMirrorEditor | undefined;
            if (editor) {
              void showFailure(cell, editor.editor, record.run_dir);
            }
          }
        }
      });
    }
  };
  void panel.context.ready.then(() => {
    follow();
    panel.content.model?.cells.changed.connect(follow);
  });
}
