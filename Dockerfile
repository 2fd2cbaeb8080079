# One image for gateway and workers: `creative-sync gateway` / `creative-sync worker`.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY topics topics
COPY streams streams
COPY gateway gateway
COPY creative_sync creative_sync
COPY avro avro
RUN pip install --no-cache-dir -e .
ENV CREATIVE_SYNC_DATA_DIR=/data CREATIVE_SYNC_GATEWAY_HOST=0.0.0.0 CREATIVE_SYNC_WORKER_HOST=0.0.0.0
ENTRYPOINT ["creative-sync"]
