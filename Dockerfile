# syntax=docker/dockerfile:1
# google-token-operator: one image for the operator (`run`) and the callback pod (`callback`).
# Build: `make image`. The target `sandbox` is a second image, for the kind and node overlays
# only: the sandbox Google (`google-token-sandbox`). The default target ships no sandbox code.
#
# The base is pinned to an exact Python patch release and Debian release, the same Python
# minor version the tests run on (3.11). Pin it by digest too (python:3.11.13-slim-bookworm@
# sha256:...) where the build can reach a registry; it was written on a machine without
# registry access, so no digest could be looked up and none is invented here.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# --- wheels: build the wheels of the very source the tests install --------------------------
FROM ${PYTHON_IMAGE} AS wheels
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# Only what the wheels are made of (pyproject.toml names README.md as the long description);
# .dockerignore keeps everything else out of the build context.
COPY pyproject.toml README.md ./
COPY operator/ operator/
COPY sandbox/ sandbox/
# Package data included: the HTML templates.
RUN python -m pip wheel --no-deps --wheel-dir /wheels . ./sandbox

# --- builder (the operator's venv) and sandbox-builder: each image's venv, at /opt/venv ---
# A venv's scripts name their interpreter by absolute path (#!/opt/venv/bin/python), so a venv
# cannot be built in one folder and copied to another. Every runtime dependency ships
# manylinux wheels for CPython 3.11, so no compiler is needed; --only-binary makes pip refuse
# rather than need one. Each venv's command runs once, so a broken wheel fails the build.
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
COPY --from=wheels /wheels /wheels
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --only-binary=:all: /wheels/google_token_operator-*.whl \
 && /opt/venv/bin/pip uninstall --yes pip setuptools wheel \
 && /opt/venv/bin/google-token-operator --help >/dev/null

FROM ${PYTHON_IMAGE} AS sandbox-builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
COPY --from=wheels /wheels /wheels
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --only-binary=:all: /wheels/*.whl \
 && /opt/venv/bin/pip uninstall --yes pip setuptools wheel \
 && /opt/venv/bin/google-token-sandbox --help >/dev/null

# --- runtime: the same base, no build tools, a numeric non-root user -----------------------
FROM ${PYTHON_IMAGE} AS runtime
# uid/gid 10001, as the manifests' runAsUser/runAsGroup; a passwd entry so libraries that
# look the user up (getpass) find one.
RUN groupadd --system --gid 10001 google-token-operator \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin google-token-operator
# The root filesystem is read-only in the pod; pip already compiled the bytecode.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001

# --- sandbox: the sandbox Google, for the kind and node overlays (`--target sandbox`) -------
FROM runtime AS sandbox
# The venv's python links to the python3.11 of this same base image.
COPY --from=sandbox-builder /opt/venv /opt/venv
EXPOSE 8099
ENTRYPOINT ["google-token-sandbox"]
CMD ["--host", "0.0.0.0", "--port", "8099"]

# --- operator (default): the product -------------------------------------------------------
FROM runtime AS operator
COPY --from=builder /opt/venv /opt/venv
# callback 8080, kopf liveness 8081, consent API 8082, metrics 9090
EXPOSE 8080 8081 8082 9090
ENTRYPOINT ["google-token-operator"]
CMD ["run", "--all-namespaces"]
