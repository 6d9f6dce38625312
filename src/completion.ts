/**
 * WDL completion in `%%wdl` cells and .wdl files (CodeMirror's autocompletion, answered by the
 * server's language service): keywords and types where they fit, standard-library functions with
 * their signatures, tasks/workflows/structs in scope, a call's missing inputs, runtime keys, and
 * on the magic line its options and the workflow's inputs. After `name=$` on the magic line the
 * server says which Python types fit the input; the notebook's kernel lists its variables.
 */

import { autocompletion, Completion, CompletionContext, CompletionResult } from '@codemirror/autocomplete';
import { CodeEditor } from '@jupyterlab/codeeditor';
import { Kernel, KernelMessage } from '@jupyterlab/services';

import { askLanguage, toPosition } from './languageclient';

/** The kernel of each notebook cell's editor model (filled in by index.ts). */
export const cellKernels = new WeakMap<CodeEditor.IModel, () => Kernel.IKernelConnection | null | undefined>();

interface IServerCompletion {
  from: number;
  items: (Completion & { boost?: number })[];
  kernel?: { input: string; type: string; python_types: string[] };
}

// Run silently in the kernel (no history, no output): the user's variables and their types' names.
const KERNEL_VARIABLES =
  "__import__('json').dumps({k: type(v).__name__ for k, v in globals().items() if not k.startswith('_') " +
  "and k not in ('In', 'Out', 'exit', 'quit', 'get_ipython') and type(v).__name__ not in ('module', 'function', 'type', 'builtin_function_or_method')})";

export async function kernelVariables(kernel: Kernel.IKernelConnection): Promise<Record<string, string>> {
  const future = kernel.requestExecute({
    code: '',
    silent: true,
    store_history: false,
    user_expressions: { variables: KERNEL_VARIABLES }
  });
  const reply = (await future.done) as KernelMessage.IExecuteReplyMsg;
  const content = reply.content as KernelMessage.IExecuteReply & { user_expressions?: Record<string, any> };
  const result = content.user_expressions?.variables;
  const text: string | undefined = result?.data?.['text/plain'];
  if (!text) {
    return {};
  }
  return JSON.parse(text.slice(1, -1)); // a Python str's repr of JSON holding only identifiers
}

export function wdlCompletion(model: CodeEditor.IModel) {
  const source = async (context: CompletionContext): Promise<CompletionResult | null> => {
    const before = context.matchBefore(/[\w.$=-]*/);
    if (!context.explicit && (!before || before.from === before.to)) {
      return null; // nothing typed: only when asked (Ctrl-Space)
    }
    const doc = context.state.doc;
    const at = toPosition(doc, context.pos);
    const answer = await askLanguage<IServerCompletion>(model, 'complete', doc, { ...at }, () => context.view?.state.doc ?? doc);
    if (!answer || context.aborted) {
      return null;
    }
    let options: Completion[] = answer.items;
    if (answer.kernel) {
      const kernel = cellKernels.get(model)?.();
      if (!kernel) {
        return null;
      }
      const fits = new Set(answer.kernel.python_types);
      const variables = await kernelVariables(kernel);
      options = Object.entries(variables)
        .filter(([, type]) => fits.size === 0 || fits.has(type))
        .map(([name, type]) => ({ label: name, type: 'variable', detail: `${type} (kernel)` }));
    }
    const line = doc.lineAt(context.pos);
    return { from: line.from + answer.from, options, validFor: /^[\w]*$/ };
  };
  return autocompletion({ override: [source], activateOnTyping: true });
}
