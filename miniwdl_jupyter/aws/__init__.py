"""Everything AWS in one folder (docs/aws.md): the API client with retries (`api`), SageMaker Studio
(`studio`: detection and Docker rules; `studio_discovery`: its EFS and queue), the settings shared
by tasks and head jobs (`settings`), jobs and job definitions (`jobs`, `jobdefs`, `poller`, `logs`),
the `aws_batch` container backend (`backend`), the `aws` launcher (`launcher`), the head job's
entry point (`head`), the mirror of a run followed from afar (`mirror`), and `miniwdl-jupyter
submit` (`submit`). Nothing is imported here: a module loads only what it uses."""
