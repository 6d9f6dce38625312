"""AWS API access for everything in `aws/`: one client per service and endpoint per process, calls
retried with exponential backoff on throttling, submissions paced, and API errors turned into
`BackendError`s that say what failed and what to check.

Batch throttles per account (SubmitJob and DescribeJobs answer `TooManyRequestsException`, HTTP
429, when pressed). botocore's own retries are turned off here so that every retry is ours: paced,
logged, counted, and cancellable.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any, Callable, Dict, Optional

from WDL.runtime import config

from ..config import option
from ..errors import BackendError

_logger = logging.getLogger("miniwdl_jupyter.aws_batch")

THROTTLING_CODES = {
    "TooManyRequestsException",
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestLimitExceeded",
    "SlowDown",
}
_clients: Dict[tuple, Any] = {}
_clients_lock = threading.Lock()


def aws_settings(cfg: config.Loader) -> Dict[str, str]:
    """Region and endpoint from `[aws]`; empty means boto3's own resolution (AWS_REGION,
    AWS_ENDPOINT_URL, ~/.aws/config...). In SageMaker Studio the region is the app's own, a
    default that Studio discovery (studio_discovery.apply_defaults) adds to the Loader."""
    return {"region": option(cfg, "aws", "region"), "endpoint_url": option(cfg, "aws", "endpoint_url")}


def record_fields(settings: Dict[str, str]) -> Dict[str, str]:
    """The region and endpoint a run was launched against, as launch-record fields: any later
    process (another kernel, the leftover cleanup) then talks to the same endpoint."""
    return {"aws_region": settings["region"], "aws_endpoint_url": settings["endpoint_url"]}


def settings_of(record: Dict[str, Any]) -> Optional[Dict[str, str]]:
    """The inverse of `record_fields`: the settings recorded for a run (None: none recorded, use
    this process's configuration)."""
    if "aws_region" in record or "aws_endpoint_url" in record:
        return {"region": record.get("aws_region", ""), "endpoint_url": record.get("aws_endpoint_url", "")}
    return None


def client(cfg: config.Loader, service: str = "batch", settings: Optional[Dict[str, str]] = None) -> Any:
    """A boto3 client shared by all tasks of this process (boto3 clients are thread-safe; sessions
    are not, hence the lock around creation). `settings` (region, endpoint_url) override cfg's,
    e.g. those recorded when a run was launched."""
    settings = settings or aws_settings(cfg)
    key = (service, settings["region"], settings["endpoint_url"])
    with _clients_lock:
        if key not in _clients:
            try:
                import boto3
                import botocore.config
            except ImportError:
                raise BackendError(
                    "the aws_batch backend needs boto3: pip install 'miniwdl-jupyter[aws]'"
                ) from None
            session = boto3.session.Session()
            kwargs: Dict[str, Any] = {
                "config": botocore.config.Config(
                    retries={"total_max_attempts": 1},  # our own backoff, see call()
                    max_pool_connections=50,
                    user_agent_extra="miniwdl-jupyter",
                )
            }
            if settings["region"]:
                kwargs["region_name"] = settings["region"]
            if settings["endpoint_url"]:
                kwargs["endpoint_url"] = settings["endpoint_url"]
            if not (settings["region"] or session.region_name):
                raise BackendError(
                    "no AWS region: set [aws] region (MINIWDL__AWS__REGION) or AWS_DEFAULT_REGION"
                )
            _clients[key] = session.client(service, **kwargs)
        return _clients[key]


def error_code(exn: BaseException) -> str:
    response = getattr(exn, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def is_throttling(exn: BaseException) -> bool:
    response = getattr(exn, "response", None) or {}
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error_code(exn) in THROTTLING_CODES or status == 429


def _is_transient(exn: BaseException) -> bool:
    import botocore.exceptions
    from botocore.parsers import ResponseParserError

    if isinstance(exn, ResponseParserError):
        return True

    if isinstance(exn, (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError)):
        return True
    response = getattr(exn, "response", None) or {}
    return response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500


class Backoff:
    """Exponential backoff with full jitter, shared by every caller of one operation: after a
    throttle, all submitters slow down, and they speed up again after successes."""

    def __init__(self, base: float = 0.5, cap: float = 30.0):
        self.base, self.cap = base, cap
        self.lock = threading.Lock()
        self.level = 0
        self.throttled = 0  # how many throttled answers were seen (benchmarks, tests read it)

    def failed(self) -> float:
        with self.lock:
            self.level = min(self.level + 1, 16)
            self.throttled += 1
            return random.uniform(self.base, min(self.cap, self.base * 2**self.level))

    def succeeded(self) -> None:
        with self.lock:
            self.level = max(self.level - 1, 0)


_backoffs: Dict[str, Backoff] = {}


def backoff_for(operation: str) -> Backoff:
    with _clients_lock:
        return _backoffs.setdefault(operation, Backoff())


def call(
    cfg: config.Loader,
    operation: str,
    *,
    what: str = "",
    terminating: Optional[Callable[[], bool]] = None,
    service: str = "batch",
    settings: Optional[Dict[str, str]] = None,
    retries: Optional[int] = None,
    advice: str = "",
    **params: Any,
) -> Dict[str, Any]:
    """`client.<operation>(**params)`, retried on throttling and transient errors with exponential
    backoff (up to `[aws] api_retries` times); other errors become a BackendError naming `what`
    (the queue, role or job definition involved) and, unless `advice` says better, what to check."""
    import botocore.exceptions
    from botocore.parsers import ResponseParserError

    api = client(cfg, service, settings)
    method = getattr(api, operation)
    retries = option(cfg, "aws", "api_retries", "int") if retries is None else retries
    backoff = backoff_for(operation)
    for attempt in range(retries + 1):
        try:
            answer = method(**params)
            backoff.succeeded()
            return answer
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError, ResponseParserError) as exn:
            # (ResponseParserError: an answer that is not the service's format, e.g. a proxy's or
            # an endpoint's HTML error page)
            if not (is_throttling(exn) or _is_transient(exn)) or attempt == retries:
                raise backend_error(operation, exn, what, service=service, advice=advice) from None
            delay = backoff.failed()
            _logger.info("aws_batch %s throttled or failed transiently (%s); retrying in %.1fs", operation, error_code(exn) or exn, delay)
            deadline = time.monotonic() + delay
            while time.monotonic() < deadline:
                if terminating and terminating() and operation != "terminate_job":
                    raise backend_error(operation, exn, what, service=service, advice=advice) from None
                time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
    raise AssertionError("unreachable")


# How each service is named in messages, and in IAM actions.
_SERVICES = {
    "batch": ("AWS Batch", "batch"),
    "sagemaker": ("SageMaker", "sagemaker"),
    "efs": ("EFS", "elasticfilesystem"),
    "logs": ("CloudWatch Logs", "logs"),
    "s3": ("S3", "s3"),
    "cloudformation": ("CloudFormation", "cloudformation"),
}
_CREDENTIALS_ADVICE = {
    "UnrecognizedClientException": "the AWS credentials are not valid: refresh them (aws sso login, AWS_PROFILE)",
    "ExpiredTokenException": "the AWS credentials have expired: refresh them (aws sso login, AWS_PROFILE)",
}


def backend_error(operation: str, exn: BaseException, what: str = "", *, service: str = "batch", advice: str = "") -> BackendError:
    """A short BackendError for a failed API call: which call failed, on what, AWS's error code
    and message, and what to check (`advice` when the caller knows better than this module)."""
    import botocore.exceptions

    label, iam_prefix = _SERVICES.get(service, (service, service))
    code = error_code(exn)
    message = str((getattr(exn, "response", None) or {}).get("Error", {}).get("Message", "")) or str(exn)
    where = f" ({what})" if what else ""
    if code in _CREDENTIALS_ADVICE:
        advice = _CREDENTIALS_ADVICE[code]
    elif is_throttling(exn):
        advice = f"{label} kept throttling; lower [aws] submit_rate or raise [aws] api_retries"
    elif isinstance(exn, botocore.exceptions.EndpointConnectionError) or _is_transient(exn):
        advice = "check the network and [aws] region / endpoint_url"
    elif advice:
        pass
    elif code == "AccessDeniedException":
        advice = f"check the IAM permissions of these credentials ({iam_prefix}:{_pascal(operation)})"
    elif operation == "submit_job":
        advice = "check that [aws] task_queue names an ENABLED job queue in this region and the job definition is ACTIVE"
    elif operation == "register_job_definition":
        advice = "check the image name, [aws] job_role_arn / execution_role_arn and the container overrides in [aws] call_overrides"
    elif service == "batch":
        advice = "check the AWS Batch setup (queues, roles) against docs/aws.md"
    else:
        advice = f"check the {label} setup and this role's {iam_prefix}:{_pascal(operation)} permission (docs/aws.md)"
    error = f"{code}: {message}" if code else message
    return BackendError(f"{label} {_pascal(operation)} failed{where}: {error.rstrip('. ')}. Fix: {advice.rstrip('.')}")


def _pascal(operation: str) -> str:
    return "".join(part.capitalize() for part in operation.split("_"))


class RateLimiter:
    """At most `rate` calls per second across the process (a token spacing, not a burst bucket:
    Batch's SubmitJob quota is per second). Slowed further while throttled (see Backoff)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.next_at = 0.0

    def wait(self, rate: float, terminating: Optional[Callable[[], bool]] = None) -> bool:
        """Block until this caller may go; False if `terminating()` turned true meanwhile."""
        if rate <= 0:
            return True
        with self.lock:
            now = time.monotonic()
            slot = max(now, self.next_at)
            self.next_at = slot + 1.0 / rate
        while True:
            remaining = slot - time.monotonic()
            if remaining <= 0:
                return True
            if terminating and terminating():
                return False
            time.sleep(min(remaining, 0.2))


submit_limiter = RateLimiter()
