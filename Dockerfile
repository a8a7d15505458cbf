# One image for the budget worker and the summarizer (`tokenbudget worker` / `tokenbudget
# summarizer`), as docker-compose.yml runs them. Same install order as `make install`: torch
# first, pinned, from the CPU wheel index (an unpinned torch pulls several GB of CUDA packages),
# then the locked requirements, then this package (editable: it reads schemas/ from the tree).
FROM python:3.11.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.13.0

WORKDIR /app
COPY requirements.lock ./
RUN pip install -r requirements.lock

COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY streams ./streams
RUN pip install --no-deps -e . \
    && useradd --create-home --uid 10001 tokenbudget \
    && mkdir -p /data \
    && chown tokenbudget /data

USER tokenbudget
ENV TOKENBUDGET_DATA_DIR=/data
# 9464: the worker's /metrics, 9465: the summarizer's.
EXPOSE 9464 9465
ENTRYPOINT ["tokenbudget"]
CMD ["worker"]
