# syntax=docker/dockerfile:1
# google-token-operator: one image for the operator (`run`), the callback pod (`callback`) and
# the kind overlay's sandbox Google (`sandbox`). Build: `make image`.
#
# The base is pinned to an exact Python patch release and Debian release, the same Python
# minor version the tests run on (3.11). Pin it by digest too (python:3.11.13-slim-bookworm@
# sha256:...) where the build can reach a registry; it was written on a machine without
# registry access, so no digest could be looked up and none is invented here.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# --- builder: build the project's wheel, install it with its dependencies into a venv ------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# Only what the wheel is made of (pyproject.toml names README.md as the long description);
# .dockerignore keeps everything else out of the build context.
COPY pyproject.toml README.md ./
COPY operator/ operator/
# The wheel of the very source the tests install (package data included: the HTML
# templates). Every runtime dependency ships manylinux wheels for CPython 3.11, so no
# compiler is needed here either; --only-binary makes pip refuse rather than need one.
# The last step imports every command once, so a broken wheel fails the build.
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install --only-binary=:all: /wheels/*.whl \
 && /opt/venv/bin/pip uninstall --yes pip setuptools wheel \
 && /opt/venv/bin/google-token-operator --help >/dev/null

# --- final: the venv on the same base, no build tools, a numeric non-root user ------------
FROM ${PYTHON_IMAGE}
# uid/gid 10001, as the manifests' runAsUser/runAsGroup; a passwd entry so libraries that
# look the user up (getpass) find one.
RUN groupadd --system --gid 10001 google-token-operator \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin google-token-operator
# The venv's python links to /usr/local/bin/python3.11 of this same base image.
COPY --from=builder /opt/venv /opt/venv
# The root filesystem is read-only in the pod; pip already compiled the bytecode.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
# callback 8080, kopf liveness 8081, consent API 8082, metrics 9090, sandbox 8099 (kind only)
EXPOSE 8080 8081 8082 9090
ENTRYPOINT ["google-token-operator"]
CMD ["run", "--all-namespaces"]
