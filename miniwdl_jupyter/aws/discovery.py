"""Where `[aws]` settings come from besides the configuration itself: the outputs of `[aws] stack`
and, in SageMaker Studio, the domain's EFS and tagged queue. One explicit step, `apply_defaults`,
called where the AWS code (and the runs layer, for Studio's run root) is about to use a Loader;
everything found is a default, so a cfg file or MINIWDL__* variable still wins."""

from __future__ import annotations

from WDL.runtime.config import Loader

from . import stack, studio_discovery


def apply_defaults(cfg: Loader) -> Loader:
    # Studio first, so that an explicitly named stack wins over what Studio discovery found.
    return stack.apply_defaults(studio_discovery.apply_defaults(cfg))
