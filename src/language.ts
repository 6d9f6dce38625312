/**
 * The WDL language as JupyterLab's editors use it: the stream tokenizer wrapped as a CodeMirror
 * language, plus stable `tok-*` classes on its tokens (classHighlighter) so themes and tests can
 * find WDL tokens whatever colour scheme is active.
 */

import { HighlightStyle, LanguageSupport, StreamLanguage, syntaxHighlighting } from '@codemirror/language';
import { classHighlighter, tags } from '@lezer/highlight';

import { wdlParser } from './wdl';

export const WDL_MIME = 'text/x-wdl';

export const wdlLanguage = StreamLanguage.define(wdlParser);

/** What JupyterLab's own highlight style leaves plain: WDL's types (String, File, Array...). */
const wdlStyle = HighlightStyle.define([
  { tag: tags.typeName, color: 'var(--jp-mirror-editor-variable-3-color)' },
  { tag: tags.special(tags.string), color: 'var(--jp-mirror-editor-string-2-color)' }
]);

export function wdl(): LanguageSupport {
  return new LanguageSupport(wdlLanguage, [syntaxHighlighting(wdlStyle), syntaxHighlighting(classHighlighter)]);
}

/**
 * Does a notebook cell hold WDL? `%%wdl` with WDL in its body: not `%%wdl -f FILE`, whose body is
 * the run's inputs (JSON or YAML).
 */
export function isWdlCell(source: string): boolean {
  const match = /^%%wdl(?=\s|$)([^\n]*)/.exec(source);
  if (!match) {
    return false;
  }
  return !/(^|\s)(-f|--file)(\s|=|$)/.test(match[1]);
}
