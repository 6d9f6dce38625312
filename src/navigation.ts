/**
 * Hover and go to definition for WDL (the server's language service): hovering a name shows its
 * type and declaration, a call's inputs and outputs, a standard-library function's signature;
 * Ctrl/Cmd-click or F12 on a call, a struct or an import opens where it is defined (another file
 * opens in the editor at that line).
 */

import { EditorView, hoverTooltip, keymap } from '@codemirror/view';
import { Prec } from '@codemirror/state';
import { CodeEditor } from '@jupyterlab/codeeditor';

import { askLanguage, fromPosition, holdsWdl, toPosition } from './languageclient';

export interface IDefinition {
  path?: string | null; // relative to the server root
  abspath?: string;
  url?: string;
  line: number;
  column: number;
}

/** How a definition elsewhere is opened (index.ts: the document manager). */
export type OpenDefinition = (definition: IDefinition) => void;

export function wdlHover(model: CodeEditor.IModel) {
  return hoverTooltip(
    async (view, pos) => {
      const doc = view.state.doc;
      const answer = await askLanguage<{ text?: string; from: number; to: number }>(
        model, 'hover', doc, { ...toPosition(doc, pos) }, () => view.state.doc
      );
      if (!answer || !answer.text) {
        return null;
      }
      const line = doc.lineAt(pos);
      return {
        pos: line.from + answer.from,
        end: line.from + answer.to,
        above: true,
        create: () => {
          const dom = document.createElement('div');
          dom.className = 'miniwdl-hover';
          dom.textContent = answer.text!;
          return { dom };
        }
      };
    },
    { hoverTime: 300 }
  );
}

export function wdlDefinition(model: CodeEditor.IModel, open: OpenDefinition) {
  const go = (view: EditorView, pos: number): boolean => {
    const doc = view.state.doc;
    if (!holdsWdl(model, doc)) {
      return false; // other editors keep F12 and Ctrl-click (a second cursor) for themselves
    }
    void askLanguage<IDefinition>(model, 'definition', doc, { ...toPosition(doc, pos) }, () => view.state.doc).then(found => {
      if (!found || !found.line) {
        return;
      }
      if (found.abspath && !found.url && sameDocument(model, found)) {
        const at = fromPosition(view.state.doc, found.line, found.column - 1);
        view.dispatch({ selection: { anchor: at }, scrollIntoView: true });
        view.focus();
        return;
      }
      open(found);
    });
    return true;
  };
  return [
    Prec.high(keymap.of([{ key: 'F12', run: view => go(view, view.state.selection.main.head) }])),
    EditorView.domEventHandlers({
      mousedown: (event, view) => {
        if (!(event.ctrlKey || event.metaKey) || event.button !== 0) {
          return false;
        }
        const pos = view.posAtCoords({ x: event.clientX, y: event.clientY });
        if (pos === null || !go(view, pos)) {
          return false;
        }
        event.preventDefault();
        return true;
      }
    })
  ];
}

/** A definition in the editor's own text (a cell's task): its file is the server's stand-in. */
function sameDocument(model: CodeEditor.IModel, found: IDefinition): boolean {
  const isCell = (model as unknown as { id?: string }).id !== undefined;
  return isCell ? /\/cell\.wdl$/.test(found.abspath ?? '') : false;
}
