# One image for every role in docker-compose.yml: web, migrate, worker, beat, flower.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DIGEST_VAR_DIR=/var/lib/digest

WORKDIR /app
COPY pyproject.toml README.md ./
COPY core ./core
COPY digest ./digest
COPY emails ./emails
COPY subscribers ./subscribers
COPY workers ./workers
# Flower is only the operators' dashboard: installed here, not a dependency of the package.
# Without the `semantic` extra the image matches keywords by their words only (DIGEST_SEMANTIC
# auto); add torch's CPU build and ".[semantic]" here to match by meaning too (about 1.1 GB).
RUN pip install . "flower>=2.0" \
    && useradd --system --home-dir /var/lib/digest --shell /usr/sbin/nologin digest \
    && mkdir -p /var/lib/digest \
    && chown digest /var/lib/digest

USER digest
WORKDIR /var/lib/digest
EXPOSE 8000
CMD ["digest", "serve", "--host", "0.0.0.0", "--port", "8000", "--web-only"]
