version 1.1

# Notebook steps for miniwdl-jupyter: execute a parameterised Jupyter notebook with papermill
# inside a container image that has papermill, ipykernel and nbconvert (miniwdl_jupyter's
# build_image() / `%wdl build` make one from a requirements list).
#
# From a %%wdl cell:   import "notebook.wdl" as nb   ...   call nb.notebook_step { input: ... }
# (the package's wdl/ folder is on the import search path). See docs/notebook_steps.md.

task notebook_step {
    input {
        File notebook
        # papermill parameters: a YAML or JSON mapping, e.g. write_json({"sample": s})
        File? parameters
        # Files the notebook reads: each is linked into its working directory under its own name
        Array[File] input_files = []
        # Glob patterns (relative to the notebook's working directory) of files to collect after
        # the run; whatever the notebook writes under outputs/ is collected too
        Array[String] output_patterns = []
        # The step image (e.g. from `%wdl build`)
        String image
        # Kernel name; empty: the notebook's kernelspec if the image has it, else the image's
        # kernel for the notebook's language
        String kernel = ""
        Int cpu = 1
        String memory = "2G"
    }

    String stem = basename(notebook, ".ipynb")

    command <<<
        set -eu
        # Kernels write connection files and caches under HOME, which may not be writable for
        # the container's user: keep them in a scratch directory.
        scratch="$(mktemp -d)"
        export JUPYTER_RUNTIME_DIR="$scratch/runtime" IPYTHONDIR="$scratch/ipython" MPLCONFIGDIR="$scratch/mpl"
        python3 - '~{notebook}' '~{stem}' '~{select_first([parameters, ""])}' \
            '~{write_lines(input_files)}' '~{write_lines(output_patterns)}' '~{kernel}' <<'PYTHON'
    import glob
    import html
    import json
    import logging
    import os
    import shutil
    import sys

    import nbformat
    import papermill
    import yaml
    from jupyter_client.kernelspec import KernelSpecManager

    notebook, stem, parameters_file, inputs_list, patterns_list, kernel = sys.argv[1:7]
    executed, rendered = stem + ".ipynb", stem + ".html"
    # papermill's INFO lines would crowd the stderr tail that a failure shows
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)


    def lines(path):
        with open(path) as f:
            return [line.strip() for line in f if line.strip()]


    def choose_kernel():
        # The notebook's own kernelspec when the image has it; otherwise a kernel of the same
        # language (a notebook saved with "conda-env-x-py" still runs on the image's python3).
        nb = nbformat.read(notebook, as_version=4)
        spec = nb.metadata.get("kernelspec", {})
        language = (spec.get("language") or nb.metadata.get("language_info", {}).get("name") or "python").lower()
        available = KernelSpecManager().get_all_specs()
        if spec.get("name") in available:
            return spec["name"]
        same_language = sorted(n for n, s in available.items() if s["spec"].get("language", "").lower() == language)
        if not same_language:
            sys.exit(f"notebook step: the image has no {language} kernel (kernels: {', '.join(sorted(available)) or 'none'})")
        print(f"notebook step: kernel {spec.get('name')!r} is not in the image; using {same_language[0]!r} ({language})", file=sys.stderr)
        return same_language[0]


    def link_inputs():
        linked = set()
        for path in lines(inputs_list):
            name = os.path.basename(path)
            if os.path.lexists(name):
                sys.exit(f"notebook step: two input files are named {name}")
            os.symlink(path, name)
            linked.add(os.path.abspath(name))
        return linked


    def collect_outputs(inputs):
        # Copy what the patterns match into outputs/, except the inputs linked in and outputs/ itself.
        os.makedirs("outputs", exist_ok=True)
        outputs_dir = os.path.abspath("outputs") + os.sep
        for pattern in lines(patterns_list):
            for path in glob.glob(pattern, recursive=True):
                full = os.path.abspath(path)
                if os.path.isfile(path) and full not in inputs and not full.startswith(outputs_dir):
                    shutil.copy2(path, os.path.join("outputs", os.path.basename(path)))


    def render_html():
        try:
            from nbconvert import HTMLExporter

            body, _ = HTMLExporter().from_filename(executed)
        except Exception as exn:  # a broken rendering must not hide the notebook's own result
            body = f"<pre>could not render {html.escape(executed)}: {html.escape(repr(exn))}</pre>"
        with open(rendered, "w") as f:
            f.write(body)


    def failing_cell_index(exn):
        # Where the failing cell is in the executed notebook as saved: papermill adds error
        # banners (at the top and above the failing cell), so its own cell_index is off there.
        try:
            cells = nbformat.read(executed, as_version=4).cells
            return next(i for i, c in enumerate(cells) if any(o.get("output_type") == "error" for o in c.get("outputs", [])))
        except Exception:
            return exn.cell_index


    def failure_summary(exn):
        # Name the failing cell and its exception: that is what the user needs in a short error.
        if isinstance(exn, papermill.PapermillExecutionError):
            index = failing_cell_index(exn)
            return {
                "cell_index": index,
                "execution_count": exn.exec_count,
                "ename": exn.ename,
                "evalue": exn.evalue,
                "source": exn.source,
                "message": f"notebook {stem} failed at cell In [{exn.exec_count}]: {exn.ename}: {exn.evalue}",
            }
        return {"ename": type(exn).__name__, "evalue": str(exn), "message": f"notebook {stem} failed: {type(exn).__name__}: {exn}"}


    parameters = {}
    if parameters_file:
        with open(parameters_file) as f:
            parameters = yaml.safe_load(f) or {}
        if not isinstance(parameters, dict):
            sys.exit(f"notebook step: parameters must be a mapping of name to value, not {type(parameters).__name__}")
    inputs = link_inputs()
    failure = None
    kernel = kernel or choose_kernel()
    print(f"notebook step: executing {stem} on kernel {kernel}", file=sys.stderr, flush=True)
    try:
        papermill.execute_notebook(
            notebook, executed, parameters=parameters, kernel_name=kernel,
            # the notebook's own output streams become the task's stdout and stderr
            cwd=".", progress_bar=False, stdout_file=sys.stdout, stderr_file=sys.stderr,
        )
    except Exception as exn:
        failure = failure_summary(exn)
    if os.path.exists(executed):
        render_html()
    collect_outputs(inputs)
    if failure:
        with open("notebook_error.json", "w") as f:
            json.dump(failure, f)
        if failure.get("source"):
            print("--- failing cell ---\n" + "\n".join(failure["source"].splitlines()[:8]), file=sys.stderr)
        print(failure["message"], file=sys.stderr)
        sys.exit(1)
    PYTHON
    >>>

    output {
        File executed_notebook = stem + ".ipynb"
        File html = stem + ".html"
        Array[File] outputs = glob("outputs/*")
    }

    runtime {
        docker: image
        cpu: cpu
        memory: memory
    }

    meta {
        description: "Execute a Jupyter notebook with papermill in a step image; outputs the executed notebook, its HTML rendering and the files it wrote to outputs/"
    }
}
