"""The Jupyter server extension behind the JupyterLab extension (the notebook layer's server side):
`check` for live diagnostics, the runs list and cancel for the runs sidebar.

Enabled by `jupyter-config/server-config/miniwdl_jupyter.json`, which the wheel installs into
`etc/jupyter/jupyter_server_config.d/`. The core never imports this package.
"""

from __future__ import annotations

from typing import Any, Dict, List


def _jupyter_server_extension_points() -> List[Dict[str, str]]:
    return [{"module": "miniwdl_jupyter.labext"}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    from .. import config
    from ..aws import studio_discovery
    from .handlers import setup_handlers
    from .language_handlers import setup_language_handlers

    # One configuration for the server's lifetime, as a kernel has one per run call; in SageMaker
    # Studio with the run root on its EFS, as the kernels' (run_config.load_config).
    setup_handlers(server_app.web_app, server_app.root_dir, studio_discovery.apply_defaults(config.load()))
    setup_language_handlers(server_app.web_app)
    server_app.log.info("miniwdl-jupyter server extension loaded")
