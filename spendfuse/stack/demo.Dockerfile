# The `demo` service of a stack written by `spendfuse stack init`: the same spendfuse release as
# the one that wrote it, from the package index, running `spendfuse demo --loop` against the
# in-process fake provider (no API keys, no cost).
FROM python:3.11.12-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN pip install "spendfuse[redis,demo]==@VERSION@" \
    && useradd --create-home --uid 10001 spendfuse

USER 10001
WORKDIR /home/spendfuse
ENTRYPOINT ["spendfuse"]
CMD ["demo", "--loop"]
