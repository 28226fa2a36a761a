# ipvsd: the image a DaemonSet runs on every node (host network, privileged for netlink).
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ipvsd ./ipvsd
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
# ipvsadm for operators (`kubectl exec ... ipvsadm -Ln`), nftables for the SNAT/filter table,
# kmod for modprobe, iproute2 for diagnosis. conntrack clears stale UDP flows.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ipvsadm nftables kmod iproute2 conntrack \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
ENTRYPOINT ["ipvsd"]
