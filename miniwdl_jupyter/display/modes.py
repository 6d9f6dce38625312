"""Which progress view fits where the code runs.

`auto` resolves, in this order:
- no IPython kernel (plain `python`, a terminal IPython): `text`, a line per step of progress;
- a kernel whose frontend opened the ipywidgets control comm (`jupyter.widget.control`; JupyterLab's
  and Notebook 7's widget manager open it on connecting, when ipywidgets is already imported): `widget`;
- a cell executed without stdin (`allow_stdin` false in its execute_request: how nbclient, hence
  papermill and nbconvert, execute): `html`, a board updated in place through a display_id;
- any other kernel (an interactive frontend): `widget`. Its display bundle also carries the board as
  HTML and text, and `finish()` replaces it with an ordinary summary, so a frontend without the widget
  extension (SageMaker Studio's mismatches) still shows a readable, final record.
papermill and nbclient set nothing else the kernel could read (no environment variable).
"""

from __future__ import annotations

from typing import Any, Optional

MODES = ("auto", "widget", "html", "text", "none")
WIDGET_CONTROL_TARGET = "jupyter.widget.control"


def ipython_kernel() -> Optional[Any]:
    """The running ipykernel, or None outside a kernel."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return getattr(shell, "kernel", None) if shell is not None else None


def widget_frontend_connected() -> bool:
    """Has a frontend with the ipywidgets manager connected to this kernel?"""
    try:
        import ipywidgets  # noqa: F401 - the view needs it
        from comm import get_comm_manager
    except ImportError:
        return False
    manager = get_comm_manager()
    return any(getattr(c, "target_name", None) == WIDGET_CONTROL_TARGET for c in list(manager.comms.values()))


def headless_client() -> bool:
    """Was the running cell sent by a client that cannot answer input() (nbclient/papermill)?"""
    kernel = ipython_kernel()
    if kernel is None:
        return True
    try:
        parent = kernel.get_parent("shell")
    except (AttributeError, TypeError):  # ipykernel < 6
        parent = getattr(kernel, "_parent_header", {})
    content = (parent or {}).get("content") or {}
    return not content.get("allow_stdin", False)


def resolve_mode(mode: Optional[str]) -> str:
    """`mode` (None: auto; the caller reads `[jupyter] progress` from its run's configuration) ->
    one of widget, html, text, none."""
    chosen = (mode or "auto").strip().lower()
    if chosen not in MODES:
        raise ValueError(f"progress mode {chosen!r} is not one of {', '.join(MODES)}")
    if chosen == "none":
        return chosen
    in_kernel = ipython_kernel() is not None
    if not in_kernel:
        return "text"  # display() outside a kernel would print every refresh
    if chosen == "auto":
        return "widget" if widget_frontend_connected() or not headless_client() else "html"
    if chosen == "widget":
        try:
            import ipywidgets  # noqa: F401
        except ImportError:
            return "html"
    return chosen
