# syntax=docker/dockerfile:1
# One image for every role of the platform; the command picks the role:
#   docker run IMAGE billing worker | billing beat | billing flower ... | billing db upgrade
# docker-compose.yml runs them all. Configuration comes from the environment at run time:
# nothing secret is copied in (.dockerignore admits only the runtime lock and the sources).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# A virtualenv makes the installed project one directory to hand to the runtime stage, which
# then carries neither the sources nor pip's build dependencies.
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# The runtime dependencies only, exactly as locked (every file checked against its hash): not
# `embedded` (PostgreSQL, Redis and the mail sink are containers of their own here) and not
# `dev`. Before the sources, so that a change of code reuses this layer.
COPY requirements-runtime.lock ./
RUN pip install --require-hashes -r requirements-runtime.lock
COPY pyproject.toml README.md ./
COPY api ./api
COPY billing ./billing
COPY cli ./cli
COPY core ./core
COPY db ./db
COPY emails ./emails
COPY tasks ./tasks
# The project itself: everything it needs is installed already.
RUN pip install --no-deps .

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# A fixed numeric id, so that volume ownership and orchestrators' runAsNonRoot checks can rely
# on it. /app is the working directory and the user's only writable place: `billing beat`
# keeps its schedule in ./var (docker-compose.yml mounts a volume there).
RUN groupadd --system --gid 10001 billing \
    && useradd --system --uid 10001 --gid billing --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin billing \
    && mkdir -p /app/var/invoices \
    && chown -R billing:billing /app
# Owned by root: the application user can run the code but not change it.
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
USER 10001:10001
EXPOSE 8000 5555
# No HEALTHCHECK here: one instruction would apply to every role, and a worker is not checked
# the way the API is. Each Compose service declares its own; python (urllib) and celery
# (`celery inspect ping`) are what they use, since the slim image has no curl.
CMD ["billing", "api", "--host", "0.0.0.0", "--port", "8000"]
