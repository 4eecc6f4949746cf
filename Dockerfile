# Build a wheel in one stage, install it into a slim runtime as a non-root user.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY graphql_schema ./graphql_schema
COPY resolvers ./resolvers
COPY persistence ./persistence
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 trainer
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER trainer
WORKDIR /home/trainer
# Production refuses to start without TRAINER_JWT_SECRET (32+ characters); set
# TRAINER_DATABASE_URL=postgresql+asyncpg://... for scale (default: SQLite in ./data).
ENV TRAINER_ENV=production
EXPOSE 8000
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["trainer-console", "serve", "--host", "0.0.0.0", "--port", "8000"]
