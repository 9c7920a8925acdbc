# Debian 12's Prometheus on the offline base; its configuration is mounted by the compose file.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN install -d -o prometheus -g prometheus -m 0750 /prometheus
USER prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
