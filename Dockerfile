# ipvsd: the image a DaemonSet runs on every node (host network, privileged for netlink).
#
# hack/image.sh builds it with podman and no registry: when python:3.11-slim-bookworm is not in
# local storage it passes a stand-in made from Debian's packages as BASE. Everything below works
# on both: ipvsd lives in a venv under /opt, made by whichever python3 the base has
# (/usr/local/bin on the python image, /usr/bin on Debian's).
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS deps
# A CA bundle for pip when the build goes through a TLS-inspecting proxy (hack/image.sh mounts
# the host's and sets this when the host's pip uses one); unset, pip keeps its own bundle.
ARG PIP_CERT
RUN python3 -m venv /opt/ipvsd
WORKDIR /src
# The dependencies first, from pyproject.toml alone: a source change rebuilds none of this.
COPY pyproject.toml ./
RUN python3 -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"], sep="\n")' >requirements.txt \
    && /opt/ipvsd/bin/pip install --no-cache-dir --disable-pip-version-check -r requirements.txt

# The venv as it runs: pip and setuptools leave it, nothing installs into it at run time.
FROM deps AS runtime-deps
RUN /opt/ipvsd/bin/pip uninstall --yes --disable-pip-version-check pip setuptools

FROM deps AS build
ARG PIP_CERT
COPY README.md ./
COPY ipvsd ./ipvsd
# Only the runtime package: the API emulator and the test harnesses (ipvsd/testing) stay out.
# What the install adds to the venv (the package, its metadata, the `ipvsd` script) is gathered
# under /stage, so that the image's last layer is the package alone (about a megabyte) and a
# node pulling a new version does not download the dependencies again.
RUN rm -rf ipvsd/testing \
    && /opt/ipvsd/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps . \
    && mkdir /stage && cd / \
    && cp -a --parents opt/ipvsd/bin/ipvsd opt/ipvsd/lib/python3*/site-packages/ipvsd \
        opt/ipvsd/lib/python3*/site-packages/ipvsd-*.dist-info /stage/

FROM ${BASE}
# ipvsadm for operators (`kubectl exec ... ipvsadm -Ln`), nftables for the SNAT/filter table,
# kmod for modprobe, iproute2 for diagnosis, conntrack to clear stale UDP flows; iptables (both
# the nft and the legacy backend, for IPv4 and IPv6) and ipset to see and remove what kube-proxy
# left on the node. No package lists or downloaded packages stay in the layer.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ipvsadm nftables iptables ipset kmod iproute2 conntrack \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*
# The venv alone crosses over, in two layers: the dependencies (unchanged until pyproject.toml
# changes), then the package. No wheel, no pip cache, no sources.
COPY --from=runtime-deps /opt/ipvsd /opt/ipvsd
COPY --from=build /stage/ /
ENV PATH=/opt/ipvsd/bin:$PATH
ENTRYPOINT ["ipvsd"]
