# The operator image: `docker build -t llmrollout .` then install charts/llmrollout with that image.
#
# Supply chain: the base image is pinned by digest (a tag can be re-pushed; a digest cannot), and
# every Python package is installed at the version and hash that requirements.lock names (pip's
# --require-hashes refuses anything else); the build backend likewise from requirements-build.lock.
# `make lock` regenerates both from pyproject.toml; to move the base image, take the new digest from
# `docker buildx imagetools inspect python:3.11-slim-bookworm` and replace it in both FROM lines.
FROM python:3.11.13-slim-bookworm@sha256:86adf8dbadc3d6e82ee5dd2c74bec2e1c2467cdad47886280501df722372d2e1 AS build
WORKDIR /src
COPY requirements.lock requirements-build.lock ./
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements-build.lock \
 && python -m venv /venv \
 && /venv/bin/pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY operator ./operator
# The project itself, built with the locked backend; its dependencies are all in the venv already.
RUN pip wheel --no-cache-dir --no-build-isolation --no-deps --wheel-dir /wheels . \
 && /venv/bin/pip install --no-cache-dir --no-deps /wheels/*.whl \
 && /venv/bin/pip check

FROM python:3.11.13-slim-bookworm@sha256:86adf8dbadc3d6e82ee5dd2c74bec2e1c2467cdad47886280501df722372d2e1
RUN useradd --uid 65532 --no-create-home --shell /usr/sbin/nologin llmrollout
COPY --from=build /venv /venv
ENV PATH=/venv/bin:$PATH
USER 65532
ENTRYPOINT ["llmrollout"]
CMD ["run", "--all-namespaces"]
