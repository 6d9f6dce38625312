# The image of an `--submit aws` head job: python3 with miniwdl and miniwdl-jupyter[aws], which
# runs `miniwdl run` on AWS Batch (tasks as Batch jobs through the aws_batch backend). Build:
#   docker build -f docker/aws-head.Dockerfile -t miniwdl-jupyter-head docker/   (from PyPI), or
#   put wheels in docker/wheels/ and add --build-arg PIP_NO_INDEX=1 (offline / pinned builds).
# Then push it where your Batch compute environments pull from and set [aws] head_image.
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-venv ca-certificates >/dev/null \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/miniwdl
ENV PATH=/opt/miniwdl/bin:$PATH
ARG PIP_NO_INDEX=
# Dependencies first (a layer kept across rebuilds of the project itself), then the project.
COPY wheels/deps/ /tmp/wheels/deps/
RUN if ls /tmp/wheels/deps/*.whl >/dev/null 2>&1; then pip install -q --find-links /tmp/wheels/deps /tmp/wheels/deps/*.whl; fi
COPY wheels/project/ /tmp/wheels/project/
RUN pip install -q --find-links /tmp/wheels/deps --find-links /tmp/wheels/project "miniwdl-jupyter[aws]" && rm -rf /tmp/wheels
