/**
 * Failures on the line: when a `%%wdl` cell's run fails, the server maps the failure (the run's
 * error.json) to the cell's line: the failed call's, or for an evaluation error the expression's.
 * The line gets an error mark with the one-line message (exit code and last stderr line, or the
 * evaluation error). Editing the cell clears it.
 */

import { StateEffect, StateField, Text } from '@codemirror/state';
import { Decoration, DecorationSet, EditorView, WidgetType } from '@codemirror/view';
import { CodeEditor } from '@jupyterlab/codeeditor';

import { askLanguage } from './languageclient';

interface IFailureMark {
  line: number;
  column: number;
  message: string;
}

const setFailure = StateEffect.define<IFailureMark | null>();

class FailureMessage extends WidgetType {
  constructor(readonly message: string) {
    super();
  }
  eq(other: FailureMessage): boolean {
    return other.message === this.message;
  }
  toDOM(): HTMLElement {
    const span = document.createElement('span');
    span.className = 'miniwdl-failure-message';
    span.textContent = this.message;
    return span;
  }
}

function decorations(doc: Text, mark: IFailureMark): DecorationSet {
  const line = doc.line(Math.min(Math.max(mark.line, 1), doc.lines));
  return Decoration.set([
    Decoration.line({ class: 'miniwdl-failed-line', attributes: { title: mark.message } }).range(line.from),
    Decoration.widget({ widget: new FailureMessage(mark.message), side: 1 }).range(line.to)
  ]);
}

/** The failure mark of an editor: set by `showFailure`, gone at the first edit. */
export const failureMarks = StateField.define<DecorationSet>({
  create: () => Decoration.none,
  update(marks, tr) {
    if (tr.docChanged) {
      marks = Decoration.none;
    }
    for (const effect of tr.effects) {
      if (effect.is(setFailure)) {
        marks = effect.value ? decorations(tr.state.doc, effect.value) : Decoration.none;
      }
    }
    return marks;
  },
  provide: field => EditorView.decorations.from(field)
});

/** Ask the server where the run in `runDir` failed in this cell, and mark that line. */
export async function showFailure(model: CodeEditor.IModel, view: EditorView, runDir: string): Promise<void> {
  const doc = view.state.doc;
  const mark = await askLanguage<Partial<IFailureMark>>(model, 'failure', doc, { run_dir: runDir }, () => view.state.doc);
  if (mark && mark.line && mark.message) {
    view.dispatch({ effects: setFailure.of(mark as IFailureMark) });
  }
}
