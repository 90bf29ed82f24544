#!/usr/bin/env bash
# Wheels the lent GPU machine lacks, for its Python 3.12 (x86-64), into .whl/ (git-ignored; carried by the device
# call). Its image has torch (2.11, CUDA), numpy, tqdm, cloudpickle, packaging, typing-extensions and pytest; what
# the speed benchmarks and the CUDA tests import beyond that is listed here. MLflow, dm_control and MuJoCo are not
# carried (over the 64 MiB a call may carry with them): the checks below need neither.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .whl
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${platforms[@]}" \
  -d .whl torchrl==0.14.1 tensordict==0.14.3 pyvers==0.2.3 orjson importlib_metadata \
  pydantic==2.14.4 pydantic_core==2.50.5 annotated_types typing_inspection hoptorch==0.1.4
du -sh .whl
