# The kgqa service of docker-compose.yml: the CLI, CPU only (the GPU work happens in the vLLM service).
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY kgqa ./kgqa
COPY prompts ./prompts
# CPU wheels of torch (kgqa uses it for training only; answering runs in numpy)
RUN pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu . \
    && useradd --create-home kgqa && mkdir -p /cache && chown kgqa /cache
USER kgqa
ENV KGQA_CACHE_DIR=/cache
ENTRYPOINT ["kgqa"]
CMD ["--help"]
