/**
 * The WDL language as JupyterLab's editors use it: the stream tokenizer wrapped as a CodeMirror
 * language, plus stable `tok-*` classes on its tokens (classHighlighter) so themes and tests can
 * find WDL tokens whatever colour scheme is active.
 */

import { LanguageSupport, StreamLanguage, syntaxHighlighting } from '@codemirror/language';
import { classHighlighter } from '@lezer/highlight';

import { wdlParser } from './wdl';

export const WDL_MIME = 'text/x-wdl';

export const wdlLanguage = StreamLanguage.define(wdlParser);

export function wdl(): LanguageSupport {
  return new LanguageSupport(wdlLanguage, [syntaxHighlighting(classHighlighter)]);
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
