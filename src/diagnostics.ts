/**
 * Diagnostics as you type: the server runs miniwdl's parser, typechecker and linter (our `check`)
 * on a `%%wdl` cell's body or a .wdl file, and the editor underlines what it reports.
 *
 * @codemirror/lint debounces (it runs the source once typing pauses) and drops a result whose
 * document has changed meanwhile, so a slow check never blocks typing nor marks stale text.
 */

import { Diagnostic, linter } from '@codemirror/lint';
import { Text } from '@codemirror/state';
import { CodeEditor } from '@jupyterlab/codeeditor';

import { isWdlCell, WDL_MIME } from './language';
import { postJSON, requestAPI } from './request';

export const LINT_DELAY_MS = 400;

/** Where an editor's text lives, so imports resolve from its folder. */
export interface IEditorContext {
  kind: 'cell' | 'file';
  /** the notebook's or the file's path, relative to the server root */
  path: () => string;
}

/** Editor models -> their context, filled in as notebooks and files open. */
export const editorContexts = new WeakMap<CodeEditor.IModel, IEditorContext>();

interface IServerDiagnostic {
  line: number; // 1-based
  column: number; // 1-based
  end_line?: number;
  end_column?: number;
  severity: 'error' | 'warning' | 'info';
  message: string;
}

/** The text to check: a cell's magic line is blanked (its arguments are not WDL), so lines keep
 * their numbers. Null when the editor holds no WDL. */
export function checkedText(model: CodeEditor.IModel, text: string): string | null {
  const context = editorContexts.get(model);
  if (context?.kind === 'cell' || (!context && text.startsWith('%%'))) {
    return isWdlCell(text) ? text.replace(/^[^\n]*/, '') : null;
  }
  return model.mimeType === WDL_MIME ? text : null;
}

/** A server diagnostic's range in the document; a bare position covers the word there. */
export function toRange(doc: Text, d: IServerDiagnostic): { from: number; to: number } {
  const lineNo = Math.min(Math.max(d.line, 1), doc.lines);
  const line = doc.line(lineNo);
  const from = Math.min(line.from + Math.max(d.column - 1, 0), line.to);
  let to = from;
  if (d.end_line && d.end_column && (d.end_line > d.line || d.end_column > d.column)) {
    const endLine = doc.line(Math.min(Math.max(d.end_line, 1), doc.lines));
    to = Math.min(endLine.from + d.end_column - 1, endLine.to);
  }
  if (to <= from) {
    const rest = line.text.slice(from - line.from);
    const word = /^[A-Za-z0-9_.]+|^\S+/.exec(rest);
    to = from + (word ? word[0].length : 0);
    if (to === from) {
      to = Math.min(from + 1, doc.length);
    }
  }
  return { from, to };
}

export function wdlDiagnostics(model: CodeEditor.IModel) {
  return linter(
    async view => {
      const doc = view.state.doc;
      const text = checkedText(model, doc.toString());
      if (text === null || !text.trim()) {
        return [];
      }
      const context = editorContexts.get(model);
      let reply: { diagnostics: IServerDiagnostic[] };
      try {
        reply = await requestAPI('check', postJSON({ path: context ? context.path() : '', kind: context?.kind ?? 'file', text }));
      } catch (reason) {
        console.warn('miniwdl-jupyter: check failed', reason);
        return [];
      }
      return reply.diagnostics.map(
        (d): Diagnostic => ({ ...toRange(doc, d), severity: d.severity, message: d.message, source: 'miniwdl' })
      );
    },
    { delay: LINT_DELAY_MS }
  );
}
