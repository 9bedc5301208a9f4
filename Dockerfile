# syntax=docker/dockerfile:1
# Multi-stage build: dependencies are installed before the code is copied, so code
# changes do not invalidate the dependency layer; the runtime image runs as a non-root user.

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
# The optional dependency groups to install, comma-separated: docker-compose.yml's scale profile
# builds with EXTRAS=datasets,dask for its Dask scheduler and workers (docs/scaling.md).
ARG EXTRAS=datasets
# Install only the dependencies declared in pyproject.toml (no project code yet).
RUN python -c "import os, tomllib; d = tomllib.load(open('pyproject.toml', 'rb'))['project']; extras = [e for e in os.environ['EXTRAS'].split(',') if e]; print('\n'.join(d['dependencies'] + [r for e in extras for r in d['optional-dependencies'][e]]))" > requirements.txt \
    && pip install -r requirements.txt
COPY models ./models
COPY offerdata ./offerdata
COPY runtime ./runtime
COPY training ./training
COPY service ./service
COPY offers_cli ./offers_cli
COPY examples ./examples
RUN pip install --no-deps .

FROM python:3.11-slim-bookworm AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 offers
COPY --from=build /opt/venv /opt/venv
COPY --from=build /src/examples /app/examples
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 \
    OFFERS_REGISTRY=/var/lib/offers/registry OFFERS_DATA=/var/lib/offers/data \
    OFFERS_EVENT_LOG=/var/lib/offers/events OFFERS_MODEL_CACHE_DIR=/var/lib/offers/compiled
WORKDIR /app
RUN mkdir -p /var/lib/offers/registry /var/lib/offers/data /var/lib/offers/events /var/lib/offers/compiled \
    && chown -R offers:offers /var/lib/offers
USER offers
EXPOSE 8000
ENTRYPOINT ["gunicorn", "-c", "python:service.gunicorn_conf", "service.wsgi:app"]
