/**
 * WDL for CodeMirror 6: a stream tokenizer (no grammar library: WDL's lexical structure is
 * a stack of contexts, which a StreamParser keeps in its state).
 *
 * The contexts follow miniwdl's grammar (WDL/_grammar.py):
 * - strings ('...' and "...") with `~{}` and `${}` placeholders; a placeholder holds a full
 *   expression, which may hold strings with placeholders of their own;
 * - `command <<< ... >>>`: ends at the first `>>>` (no escape exists: `>` and `>>` are plain
 *   text), only `~{}` is a placeholder, `#` is the shell's, not a WDL comment;
 * - `command { ... }`: ends at the first `}` outside a placeholder, both placeholder styles;
 * - `<<< ... >>>` in an expression is a multi-line string (WDL 1.2), same rules as the heredoc.
 * A notebook cell's first line `%%wdl ...` is the magic line, not WDL.
 */

import type { StreamParser, StringStream } from '@codemirror/language';

type Frame =
  | { kind: 'string'; quote: string }
  | { kind: 'heredoc' } // command <<< >>> and multi-line strings
  | { kind: 'command' } // command { }
  | { kind: 'placeholder'; depth: number }; // ~{ } / ${ }: an expression

export interface WdlState {
  stack: Frame[];
  /** the next identifier names a workflow, task, struct or call */
  expectName: boolean;
  /** the previous token was the keyword `command` */
  afterCommand: boolean;
  /** no token read yet: a leading `%%` line is a cell magic */
  atStart: boolean;
}

export const KEYWORDS = new Set([
  'version',
  'import',
  'as',
  'alias',
  'struct',
  'workflow',
  'task',
  'input',
  'output',
  'command',
  'runtime',
  'meta',
  'parameter_meta',
  'requirements',
  'hints',
  'call',
  'after',
  'scatter',
  'in',
  'if',
  'then',
  'else',
  'object',
  'env'
]);
export const TYPES = new Set([
  'Array',
  'Map',
  'Pair',
  'File',
  'Directory',
  'String',
  'Int',
  'Float',
  'Boolean',
  'Object'
]);
const ATOMS = new Set(['true', 'false', 'null', 'None']);
const NAMING = new Set(['workflow', 'task', 'struct', 'call']);

// Token names are @lezer/highlight tag names (StreamLanguage maps them to tags; "a.b" is the
// modifier b applied to tag a).
const T = {
  magic: 'meta',
  keyword: 'keyword',
  type: 'typeName',
  atom: 'bool',
  name: 'variableName',
  definition: 'variableName.definition',
  property: 'propertyName',
  number: 'number',
  string: 'string',
  escape: 'escape',
  placeholder: 'string.special', // the ~{ and } around an expression in text
  comment: 'lineComment',
  operator: 'operator',
  punctuation: 'punctuation',
  brace: 'brace'
};

function top(state: WdlState): Frame | undefined {
  return state.stack[state.stack.length - 1];
}

/** Text of a string/command/heredoc: up to its end, a placeholder or an escape. */
function tokenText(stream: StringStream, state: WdlState, frame: Frame): string {
  const allowsDollar = frame.kind !== 'heredoc';
  // Openers and the end come first, each as its own token.
  if (stream.match('~{') || (allowsDollar && stream.match('${'))) {
    state.stack.push({ kind: 'placeholder', depth: 0 });
    return T.placeholder;
  }
  if (frame.kind === 'string') {
    if (stream.peek() === frame.quote) {
      stream.next();
      state.stack.pop();
      return T.string;
    }
    if (stream.peek() === '\\') {
      stream.next();
      stream.next();
      return T.escape;
    }
  } else if (frame.kind === 'heredoc') {
    if (stream.match('>>>')) {
      state.stack.pop();
      return T.string;
    }
  } else if (frame.kind === 'command') {
    if (stream.peek() === '}') {
      stream.next();
      state.stack.pop();
      return T.keyword;
    }
  }
  // Plain text up to the next character that might start one of the above.
  while (!stream.eol()) {
    const ch = stream.peek() as string;
    if ((ch === '~' || (ch === '$' && allowsDollar)) && stream.string.charAt(stream.pos + 1) === '{') {
      break;
    }
    if (frame.kind === 'string' && (ch === frame.quote || ch === '\\')) {
      break;
    }
    if (frame.kind === 'heredoc' && ch === '>' && stream.string.startsWith('>>>', stream.pos)) {
      break;
    }
    if (frame.kind === 'command' && ch === '}') {
      break;
    }
    stream.next();
  }
  return T.string;
}

/** An expression or a declaration: the document's top level and a placeholder's inside. */
function tokenCode(stream: StringStream, state: WdlState): string | null {
  if (stream.eatSpace()) {
    return null;
  }
  const afterCommand = state.afterCommand;
  state.afterCommand = false;
  const frame = top(state);
  const ch = stream.peek() as string;

  if (ch === '#') {
    stream.skipToEnd();
    return T.comment;
  }
  if (afterCommand && stream.match('<<<')) {
    state.stack.push({ kind: 'heredoc' });
    return T.keyword;
  }
  if (afterCommand && ch === '{') {
    stream.next();
    state.stack.push({ kind: 'command' });
    return T.keyword;
  }
  if (stream.match('<<<')) {
    state.stack.push({ kind: 'heredoc' });
    return T.string;
  }
  if (ch === '"' || ch === "'") {
    stream.next();
    state.stack.push({ kind: 'string', quote: ch });
    return T.string;
  }
  if (frame && frame.kind === 'placeholder') {
    if (ch === '{') {
      frame.depth++;
    } else if (ch === '}') {
      if (frame.depth === 0) {
        stream.next();
        state.stack.pop();
        return T.placeholder;
      }
      frame.depth--;
    }
  }
  if (stream.match(/^[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?/) || stream.match(/^\.[0-9]+([eE][+-]?[0-9]+)?/)) {
    return T.number;
  }
  const word = stream.match(/^[A-Za-z][A-Za-z0-9_]*/) as RegExpMatchArray | null;
  if (word) {
    const name = word[0];
    if (state.expectName) {
      state.expectName = false;
      return T.definition;
    }
    if (TYPES.has(name)) {
      return T.type;
    }
    if (ATOMS.has(name)) {
      return T.atom;
    }
    if (KEYWORDS.has(name) && !(frame && frame.kind === 'placeholder' && !['if', 'then', 'else'].includes(name))) {
      state.expectName = NAMING.has(name);
      state.afterCommand = name === 'command';
      return T.keyword;
    }
    // `key:` in meta sections, struct literals and call inputs
    if (stream.match(/^\s*:/, false)) {
      return T.property;
    }
    return T.name;
  }
  if (stream.match(/^(==|!=|<=|>=|&&|\|\||[-+*/%!<>=?])/)) {
    return T.operator;
  }
  stream.next();
  if ('{}[]()'.includes(ch)) {
    return T.brace;
  }
  return T.punctuation;
}

export const wdlParser: StreamParser<WdlState> = {
  name: 'wdl',
  startState: () => ({ stack: [], expectName: false, afterCommand: false, atStart: true }),
  copyState: state => ({
    stack: state.stack.map(frame => ({ ...frame })),
    expectName: state.expectName,
    afterCommand: state.afterCommand,
    atStart: state.atStart
  }),
  token(stream, state) {
    if (state.atStart) {
      state.atStart = false;
      if (stream.sol() && stream.match(/^%%/, false)) {
        stream.skipToEnd();
        return T.magic;
      }
    }
    const frame = top(state);
    if (frame && frame.kind !== 'placeholder') {
      return tokenText(stream, state, frame);
    }
    return tokenCode(stream, state);
  },
  languageData: {
    commentTokens: { line: '#' },
    closeBrackets: { brackets: ['(', '[', '{', '"', "'"] }
  }
};
