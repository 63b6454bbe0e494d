# Redis 7 from Debian bookworm's packages, for the container tests only.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server=5:7.* \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o redis -g redis -m 0750 /data
WORKDIR /data
# The account the Debian package creates (test-only image).
# hadolint ignore=DL3066
USER redis
EXPOSE 6379
HEALTHCHECK --interval=2s --timeout=3s --retries=30 CMD ["redis-cli", "ping"]
CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no"]
