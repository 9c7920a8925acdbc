# The task API on the offline base: the labctl-taskapi built on this machine (same Debian 12
# libraries as the base, which make-offline-base takes from this machine's apt sources).
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY labctl-taskapi /usr/local/bin/labctl-taskapi
RUN groupadd --system --gid 10001 taskapi \
    && useradd --system --uid 10001 --gid taskapi --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin taskapi \
    && install -d -o taskapi -g taskapi -m 0750 /data \
    && /usr/local/bin/labctl-taskapi --version
ENV PORT=5000 HOST=0.0.0.0 DB_PATH=/data/tasks.db OTEL_SERVICE_NAME=task-api
USER 10001:10001
VOLUME ["/data"]
EXPOSE 5000
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/labctl-taskapi", "--healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/labctl-taskapi"]
