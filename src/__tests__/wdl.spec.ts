/**
 * The WDL tokenizer on the cases a regex highlighter gets wrong (see miniwdl's grammar,
 * WDL/_grammar.py): nested placeholders, `>` and `>>` inside heredocs, `#` inside strings and
 * commands, `}` inside placeholders of a `command { }`, the magic line of a cell.
 */

import { StringStream } from '@codemirror/language';

import { isWdlCell } from '../language';
import { wdlParser, WdlState } from '../wdl';

type Token = [string, string | null];

/** Tokenize `text` line by line as CodeMirror does: [text, token name] pairs, blanks dropped. */
function tokenize(text: string): Token[] {
  let state: WdlState = wdlParser.startState!(2);
  const tokens: Token[] = [];
  for (const line of text.split('\n')) {
    const stream = new StringStream(line, 2, 2);
    while (!stream.eol()) {
      const style = wdlParser.token(stream, state);
      if (stream.pos === stream.start) {
        throw new Error(`no progress at ${stream.pos} of ${JSON.stringify(line)}`);
      }
      const piece = line.slice(stream.start, stream.pos);
      if (piece.trim()) {
        tokens.push([piece, style]);
      }
      stream.start = stream.pos;
    }
    state = wdlParser.copyState!(state);
  }
  return tokens;
}

const styleOf = (tokens: Token[], text: string) => tokens.filter(([t]) => t === text).map(([, s]) => s);

describe('WDL tokenizer', () => {
  it('highlights keywords, types, names and numbers', () => {
    const t = tokenize('version 1.1\nworkflow hello {\n  input { Array[File] reads  Int n = 3 }\n  call align as a\n}');
    expect(styleOf(t, 'version')).toEqual(['keyword']);
    expect(styleOf(t, '1.1')).toEqual(['number']);
    expect(styleOf(t, 'hello')).toEqual(['variableName.definition']);
    expect(styleOf(t, 'Array')).toEqual(['typeName']);
    expect(styleOf(t, 'File')).toEqual(['typeName']);
    expect(styleOf(t, 'align')).toEqual(['variableName.definition']);
    expect(styleOf(t, 'reads')).toEqual(['variableName']);
  });

  it('keeps nested placeholders and strings inside placeholders apart', () => {
    const t = tokenize('String s = "a ~{if x then "in ~{y + 1} }" else "#no"} b"');
    // Two placeholders open and both close; the inner strings are strings again.
    expect(styleOf(t, '~{')).toEqual(['string.special', 'string.special']);
    expect(styleOf(t, '}')).toEqual(['string.special', 'string.special']);
    expect(styleOf(t, 'if')).toEqual(['keyword']);
    expect(styleOf(t, 'y')).toEqual(['variableName']);
    expect(styleOf(t, '1')).toEqual(['number']);
    expect(styleOf(t, ' }')).toEqual(['string']); // text after the inner placeholder, in its string
    expect(styleOf(t, '#no')).toEqual(['string']);
    expect(t.slice(-2)).toEqual([
      [' b', 'string'],
      ['"', 'string']
    ]);
    expect(tokenize('String s = "x"\nInt n = 1').slice(-4)).toEqual([
      ['Int', 'typeName'],
      ['n', 'variableName'],
      ['=', 'operator'],
      ['1', 'number']
    ]);
  });

  it('ends a heredoc command at the first >>> only', () => {
    const t = tokenize(
      'command <<<\n  sort > out.txt 2>> err.txt\n  echo "~{sep=">>" names}"\n  awk \'$1 > 0\' x\n>>>\nInt after = 1'
    );
    expect(styleOf(t, '<<<')).toEqual(['keyword']);
    expect(styleOf(t, '  sort > out.txt 2>> err.txt')).toEqual(['string']);
    // `>>` inside a placeholder's string is the string's, not the end of the command.
    expect(styleOf(t, 'sep')).toEqual(['variableName']);
    expect(styleOf(t, '>>')).toEqual(['string']);
    expect(styleOf(t, "  awk '$1 > 0' x")).toEqual(['string']); // $ is not a placeholder in <<< >>>
    expect(styleOf(t, '>>>')).toEqual(['string']);
    expect(styleOf(t, 'Int')).toEqual(['typeName']); // back in WDL after the command
  });

  it('treats >>>> as the end of the heredoc followed by >', () => {
    const t = tokenize('command <<< echo a >>>>\nInt n = 1');
    expect(t.slice(0, 5)).toEqual([
      ['command', 'keyword'],
      ['<<<', 'keyword'],
      [' echo a ', 'string'],
      ['>>>', 'string'],
      ['>', 'operator']
    ]);
  });

  it('keeps # in strings and commands, and makes it a comment elsewhere', () => {
    const t = tokenize('String s = "a # b" # a comment\ncommand <<< echo "#1" # shell >>>\nInt n = 1 # note');
    expect(styleOf(t, 'a # b')).toEqual(['string']);
    expect(styleOf(t, '# a comment')).toEqual(['lineComment']);
    expect(styleOf(t, ' echo "#1" # shell ')).toEqual(['string']);
    expect(styleOf(t, '# note')).toEqual(['lineComment']);
    expect(tokenize("String q = 'it\\'s # not a comment'").map(([, s]) => s)).not.toContain('lineComment');
  });

  it('ends a brace command at } outside its placeholders, with both placeholder styles', () => {
    const t = tokenize('command {\n  echo ${name} ~{x} $HOME ${if b then "}" else "{"}\n}\nInt n = 1');
    expect(styleOf(t, '${')).toEqual(['string.special', 'string.special']);
    expect(styleOf(t, '"}"')).toEqual([]); // a string token of its own
    expect(t.filter(([, s]) => s === 'keyword').map(([x]) => x)).toEqual(['command', '{', 'if', 'then', 'else', '}']);
    expect(styleOf(t, 'Int')).toEqual(['typeName']);
  });

  it('reads <<< >>> in an expression as a multi-line string', () => {
    const t = tokenize('String s = <<<\n  hi ~{name} #x\n>>>\nInt n = 1');
    expect(styleOf(t, '<<<')).toEqual(['string']);
    expect(styleOf(t, '  hi ')).toEqual(['string']);
    expect(styleOf(t, 'name')).toEqual(['variableName']);
    expect(styleOf(t, ' #x')).toEqual(['string']);
    expect(styleOf(t, 'Int')).toEqual(['typeName']);
  });

  it('highlights a cell magic line as such, and only on the first line', () => {
    const t = tokenize('%%wdl -o run names=$samples\nversion 1.1\nInt x = 10 %% 3');
    expect(t[0]).toEqual(['%%wdl -o run names=$samples', 'meta']);
    expect(styleOf(t, 'version')).toEqual(['keyword']);
    expect(styleOf(t, '%')).toEqual(['operator', 'operator']);
  });

  it('recognises %%wdl cells whose body is WDL', () => {
    expect(isWdlCell('%%wdl\nversion 1.1')).toBe(true);
    expect(isWdlCell('%%wdl -o r names=$x\nversion 1.1')).toBe(true);
    expect(isWdlCell('%%wdl check\nversion 1.1')).toBe(true);
    expect(isWdlCell('%%wdl -f main.wdl\nnames: [a]')).toBe(false); // the body holds inputs
    expect(isWdlCell('%%wdl --file=main.wdl\n{}')).toBe(false);
    expect(isWdlCell('%%wdlx\n')).toBe(false);
    expect(isWdlCell('x = 1\n%%wdl')).toBe(false);
  });
});
