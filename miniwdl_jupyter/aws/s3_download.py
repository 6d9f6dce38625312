"""`s3://` File and Directory inputs localized by a task of the run's own backend (on aws_batch: a
Batch job writing onto the shared filesystem, as the Amazon Genomics CLI does), in an image of your
own with python3 and boto3: `[aws] s3_download_image`, else `[aws] head_image` (the `--submit aws`
head image, docker/aws-head.Dockerfile, has both). No image from a public registry is needed.

miniwdl plugins for the URI scheme `s3` (entry-point groups miniwdl.plugin.file_download and
directory_download); they take the scheme over from miniwdl's own awscli downloader, and hand back
to it when no such image is configured. Credentials: the job's role (`[aws] job_role_arn`) or, with
`[download_awscli] host_credentials = true`, this host's (as miniwdl's own downloader shares them).
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from typing import Any, Dict, Generator

from WDL.runtime import config
from WDL.runtime.download import awscli_directory_downloader, awscli_downloader, prepare_aws_credentials

from ..config import option

# One script for files and directories: a key ending in "/" (or a Directory input) is a prefix.
_DOWNLOAD_PY = r"""
import os, sys, boto3
uri, dest, directory = sys.argv[1], sys.argv[2], sys.argv[3] == "true"
bucket, _, key = uri[len("s3://"):].partition("/")
s3 = boto3.client("s3")
if not directory:
    s3.download_file(bucket, key, os.path.join(dest, os.path.basename(key)))
    sys.exit(0)
prefix = key if key.endswith("/") or not key else key + "/"
got = 0
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
    for item in page.get("Contents", []):
        rel = item["Key"][len(prefix):]
        if not rel or rel.endswith("/"):
            continue
        target = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        s3.download_file(bucket, item["Key"], target)
        got += 1
if not got:
    sys.exit(f"no objects under {uri}")
"""

_TASK = r"""
task s3_download_{kind} {{
    input {{
        String uri
        String docker
        File? aws_credentials
        String script
    }}
    String name = basename(uri, "/")
    command <<<
        set -euo pipefail
        if [ -n "~{{aws_credentials}}" ]; then
            source "~{{aws_credentials}}"
        fi
        mkdir -p "__out/~{{if {directory} then name else ""}}"
        python3 -c "~{{script}}" "~{{uri}}" "__out/~{{if {directory} then name else ""}}" {directory}
    >>>
    output {{
        {output}
    }}
    runtime {{
        docker: docker
    }}
}}
"""


def _image(cfg: config.Loader) -> str:
    return option(cfg, "aws", "s3_download_image") or option(cfg, "aws", "head_image")


def _download(cfg: config.Loader, logger: logging.Logger, uri: str, directory: bool) -> Generator[Dict[str, Any], Dict[str, Any], None]:
    inputs: Dict[str, Any] = {"uri": uri, "docker": _image(cfg), "script": _DOWNLOAD_PY.replace('"', '\\"')}
    output = 'Directory directory = "__out/" + name' if directory else 'File file = glob("__out/*")[0]'
    wdl = _TASK.format(kind="directory" if directory else "file", directory=str(directory).lower(), output=output)
    with ExitStack() as cleanup:
        inputs["aws_credentials"] = prepare_aws_credentials(cfg, logger, cleanup)
        recv = yield {"task_wdl": wdl, "inputs": inputs}
    yield recv


def file_downloader(cfg: config.Loader, logger: logging.Logger, uri: str, **kwargs: Any) -> Generator[Dict[str, Any], Dict[str, Any], None]:
    if not _image(cfg):
        return (yield from awscli_downloader(cfg, logger, uri, **kwargs))
    return (yield from _download(cfg, logger, uri, directory=False))


def directory_downloader(cfg: config.Loader, logger: logging.Logger, uri: str, **kwargs: Any) -> Generator[Dict[str, Any], Dict[str, Any], None]:
    if not _image(cfg):
        return (yield from awscli_directory_downloader(cfg, logger, uri, **kwargs))
    return (yield from _download(cfg, logger, uri, directory=True))
