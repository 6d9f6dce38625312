/**
 * Requests to the server's WDL language service (miniwdl_jupyter/labext/language_handlers.py)
 * for an editor: the document goes whole with each request (the server parses it once per change),
 * and an answer is dropped when the editor's text changed since, or a newer request of the same
 * kind was sent meanwhile.
 */

import { Text } from '@codemirror/state';
import { CodeEditor } from '@jupyterlab/codeeditor';

import { checkedText, editorContexts } from './diagnostics';
import { postJSON, requestAPI } from './request';

export interface IPosition {
  line: number; // 1-based
  ch: number; // 0-based offset in the line
}

export function toPosition(doc: Text, pos: number): IPosition {
  const line = doc.lineAt(pos);
  return { line: line.number, ch: pos - line.from };
}

export function fromPosition(doc: Text, line: number, ch: number): number {
  const l = doc.line(Math.min(Math.max(line, 1), doc.lines));
  return Math.min(l.from + Math.max(ch, 0), l.to);
}

/** Whether the editor holds WDL (a `%%wdl` cell, a .wdl file): the only editors asked about. */
export function holdsWdl(model: CodeEditor.IModel, doc: Text): boolean {
  return checkedText(model, doc.toString()) !== null;
}

/** The newest request id by editor model and kind: an answer to an older one is stale. */
const newest = new WeakMap<CodeEditor.IModel, Map<string, number>>();
let counter = 0;

/**
 * Ask the server about `doc` (the editor's current text) at `pos`; null for an editor holding no
 * WDL, a failed request, or a stale answer.
 */
export async function askLanguage<T>(
  model: CodeEditor.IModel,
  endpoint: 'complete' | 'hover' | 'definition' | 'failure',
  doc: Text,
  extra: Record<string, unknown>,
  current: () => Text
): Promise<T | null> {
  if (!holdsWdl(model, doc)) {
    return null;
  }
  const text = doc.toString();
  const context = editorContexts.get(model);
  const id = ++counter;
  const byKind = newest.get(model) ?? new Map<string, number>();
  newest.set(model, byKind);
  byKind.set(endpoint, id);
  const key = (model as unknown as { id?: string }).id ?? '';
  let answer: T & { version?: number };
  try {
    answer = await requestAPI(
      `language/${endpoint}`,
      postJSON({ key, path: context ? context.path() : '', kind: context?.kind ?? 'file', text, version: id, ...extra })
    );
  } catch (reason) {
    console.warn(`miniwdl-jupyter: ${endpoint} failed`, reason);
    return null;
  }
  if (answer.version !== byKind.get(endpoint) || current() !== doc) {
    return null; // the text changed, or a newer request went out: this answer is stale
  }
  return answer;
}
