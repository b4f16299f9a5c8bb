# The `demo` service of docker-compose.yml: spendfuse plus both provider SDKs, running
# `spendfuse demo --loop` against the in-process fake provider (no API keys, no cost).
FROM python:3.11.12-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY spendfuse ./spendfuse
# redis for SPENDFUSE_STORE=redis://...; the SDKs are what the demo agent calls. The version
# ranges are the ones pyproject.toml supports, so no exact pins here.
# hadolint ignore=DL3013
RUN pip install ".[redis]" "anthropic>=0.75.0" "openai>=2.9.0" \
    && useradd --create-home --uid 10001 spendfuse

USER 10001
WORKDIR /home/spendfuse
ENTRYPOINT ["spendfuse"]
CMD ["demo", "--loop"]
