# Provider simulator (dev and tests only): OpenAI, Anthropic and Gemini wire formats.
# Build from the repository root:  docker build -f docker/simulator.Dockerfile -t modelbus/simulator:dev .
# Multi-stage: uv resolves from the committed uv.lock in a build stage; the runtime stage is
# python:3.11-slim with only the virtualenv, run as an unprivileged user.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
COPY --from=ghcr.io/astral-sh/uv:0.13 /uv /bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# Third-party dependencies first: this layer is reused until uv.lock changes.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace --package modelbus-simulator
# Then the workspace members this image needs, installed non-editable into the venv.
COPY . .
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package modelbus-simulator

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 modelbus \
 && useradd --system --uid 10001 --gid modelbus --no-create-home --shell /usr/sbin/nologin modelbus
COPY --from=build /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
USER 10001:10001
EXPOSE 8900
ENTRYPOINT ["modelbus-simulator"]
