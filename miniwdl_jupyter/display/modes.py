"""Which progress view fits where the code runs.

`auto` resolves, in this order:
- no IPython kernel (plain `python`, a terminal IPython): `text`, a line per step of progress;
- a kernel whose frontend has opened the ipywidgets control comm (`jupyter.widget.control`, which
  JupyterLab's and Notebook 7's widget manager open when they connect to a kernel): `widget`;
- any other kernel (papermill, nbclient, nbconvert, a frontend without the widget extension): `html`,
  a board updated in place through a display_id.
The kernel can't see its frontend otherwise, and papermill/nbclient set nothing it could read; a
headless client never opens the control comm, so this test is what tells them apart.
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


def configured_mode() -> str:
    from .. import config

    return (config.load()["jupyter"].get("progress") or "auto").strip().lower()


def resolve_mode(mode: Optional[str]) -> str:
    """`mode` (or `[jupyter] progress` when None) -> one of widget, html, text, none."""
    chosen = (mode or configured_mode()).strip().lower()
    if chosen not in MODES:
        raise ValueError(f"progress mode {chosen!r} is not one of {', '.join(MODES)}")
    if chosen == "none":
        return chosen
    in_kernel = ipython_kernel() is not None
    if not in_kernel:
        return "text"  # display() outside a kernel would print every refresh
    if chosen == "auto":
        return "widget" if widget_frontend_connected() else "html"
    if chosen == "widget":
        try:
            import ipywidgets  # noqa: F401
        except ImportError:
            return "html"
    return chosen
