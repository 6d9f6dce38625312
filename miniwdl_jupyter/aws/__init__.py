"""Everything AWS in one folder (docs/aws.md): the API client with retries (`api`), SageMaker
Studio's EFS, access point and queue (`studio_discovery`), the settings shared by task and head
jobs (`settings`), jobs and job definitions (`jobs`, `jobdefs`, `watcher`, `logs`), the `aws_batch`
container backend (`backend`), the `aws` launcher (`launcher`), the head job's entry point
(`head`), the mirror of a run followed from afar (`mirror`), and `miniwdl-jupyter submit`
(`submit`). Detecting Studio and its Docker daemon's rules need no AWS API and serve docker_run
and image builds too: miniwdl_jupyter/studio.py. Nothing is imported here: a module loads only
what it uses."""
