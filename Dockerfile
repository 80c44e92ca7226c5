# syntax=docker/dockerfile:1
# The reconciler image: `docker build -t ghcr.io/reconciler-dev/reconciler:0.1.0 .`
# Stage 1 builds the project wheel and wheels for its runtime dependencies; stage 2
# installs only those (no compiler, no dev extras) and runs as an unprivileged user.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY reconciler ./reconciler
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11-slim
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    RECONCILER_STATE=/var/lib/reconciler \
    PYTHONMALLOC=malloc \
    MALLOC_ARENA_MAX=2
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels reconciler \
 && groupadd --gid 65532 reconciler \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin reconciler \
 && install -d -o 65532 -g 65532 /var/lib/reconciler
WORKDIR /var/lib/reconciler
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["reconciler"]
CMD ["operator"]
