# syntax=docker/dockerfile:1
# The image `bastion serve --deployment k8s` names: one image, two workloads (`bastion server`, which holds the
# key ring and the database, and `bastion serve --server URL`, the gateway that holds only a workload token).
#
#   docker build -t bastion-ml:$(git rev-parse --short HEAD) .
#   docker inspect --format '{{index .RepoDigests 0}}' bastion-ml:…   # pin this digest in --image
#
# Non-root (uid/gid 10001, matching the manifests' securityContext), nothing written outside /tmp and the
# mounted home at run time (PYTHONDONTWRITEBYTECODE, byte code compiled at build time), so the pods run with a
# read-only root filesystem. Build tools live in the build stage only; the final stage gets the finished
# virtual environment. The base is pinned by digest (python:3.11-slim-bookworm, linux/amd64+arm64 index as
# published on Docker Hub), written out in both FROM lines so that scanners see the pin; renew both
# deliberately: `docker buildx imagetools inspect python:3.11-slim-bookworm`.
FROM python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91 AS build
ARG EXTRAS=torch,scan,serve,pii,privacy
# the CPU build of torch (the default index would pull a multi-GB CUDA build)
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/bastion
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/bastion/bin/pip install --extra-index-url "${TORCH_INDEX}" ".[${EXTRAS}]" \
    && /opt/bastion/bin/python -m compileall -q /opt/bastion/lib \
    && /opt/bastion/bin/bastion --help > /dev/null

FROM python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91 AS runtime
LABEL org.opencontainers.image.title="bastion" \
      org.opencontainers.image.description="bastion server (control plane) and gateway"
RUN groupadd --system --gid 10001 bastion \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/bastion \
       --shell /usr/sbin/nologin bastion \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/bastion
COPY --from=build /opt/bastion /opt/bastion
ENV PATH=/opt/bastion/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    BASTION_HOME=/var/lib/bastion
WORKDIR /var/lib/bastion
USER 10001:10001
EXPOSE 8443
ENTRYPOINT ["bastion"]
CMD ["--help"]
