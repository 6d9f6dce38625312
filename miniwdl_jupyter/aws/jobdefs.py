"""Batch job definitions reused across attempts, tasks and runs: one per distinct shape.

A shape is everything a job definition holds (image, vcpus, memory, GPUs, volumes, mount points,
role, container overrides); its name is derived from a digest of that content, so the same shape
finds the same ACTIVE definition in any process and a 1,000-way scatter of one task registers one
job definition (miniwdl-aws registers and deregisters one per attempt). Definitions are left
registered: they cost nothing and the next run reuses them.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any, Dict, Optional

from WDL.runtime import config

from . import api

NAME_PREFIX = "miniwdl-jupyter-"
_known: Dict[str, str] = {}  # name -> ARN, for this process
_locks: Dict[str, threading.Lock] = {}
_locks_lock = threading.Lock()
registered = 0  # definitions this process registered (the benchmark reads it)


def shape_name(container_properties: Dict[str, Any], prefix: str = NAME_PREFIX) -> str:
    digest = hashlib.sha256(json.dumps(container_properties, sort_keys=True).encode()).hexdigest()[:20]
    return prefix + digest


def ensure(
    cfg: config.Loader,
    container_properties: Dict[str, Any],
    *,
    tags: Optional[Dict[str, str]] = None,
    prefix: str = NAME_PREFIX,
) -> str:
    """The ARN of an ACTIVE job definition with exactly these container properties, registering
    it only if none exists. One lookup per shape per process."""
    global registered
    name = shape_name(container_properties, prefix)
    if name in _known:
        return _known[name]
    with _locks_lock:
        lock = _locks.setdefault(name, threading.Lock())
    with lock:
        if name in _known:
            return _known[name]
        found = api.call(
            cfg, "describe_job_definitions", what=f"job definition {name}", jobDefinitionName=name, status="ACTIVE"
        ).get("jobDefinitions", [])
        # the name is a digest of the content, but check it anyway: someone may have reused it
        same = [d for d in found if _same(d.get("containerProperties", {}), container_properties)]
        if same:
            arn = max(same, key=lambda d: d.get("revision", 0))["jobDefinitionArn"]
        else:
            params: Dict[str, Any] = dict(
                jobDefinitionName=name, type="container", containerProperties=container_properties
            )
            if tags:
                params["tags"] = tags
            arn = api.call(
                cfg, "register_job_definition", what=f"job definition {name} for image {container_properties.get('image')}", **params
            )["jobDefinitionArn"]
            registered += 1
        _known[name] = arn
        return arn


def _same(described: Dict[str, Any], wanted: Dict[str, Any]) -> bool:
    """Does a described definition hold what we asked for? (The API adds empty defaults.)"""
    return all(described.get(key) == value for key, value in wanted.items())
