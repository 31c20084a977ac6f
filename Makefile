# Two commands (README): `make demo` runs the main job, `make test` runs the tests.
# Each does the set-up (scripts/setup_env.sh) first; a second set-up returns in seconds.
# ROS 2 distribution of the pip set-up: kilted (default) or jazzy, each in its own venv
# (`make test ROS_DISTRO=jazzy` -> .venv-jazzy, requirements-jazzy.lock.txt).
ROS_DISTRO ?= kilted
export ROS_DISTRO
VENV ?= $(if $(filter kilted,$(ROS_DISTRO)),$(CURDIR)/.venv,$(CURDIR)/.venv-$(ROS_DISTRO))
PY := $(VENV)/bin/python
export HAND_MESH_VENV := $(VENV)
# DDS traffic stays on loopback, always.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
INPUT ?= ../shared/data/hands/mediapipe_samples/hand_landmarker_test_video.mp4

.PHONY: setup params test demo bench bench-hamer bench-tracking bench-latency bench-detector bench-range clean
setup:
	bash scripts/setup_env.sh

# config/hands.yaml and the README's parameter table, written from hand_mesh_ros/config.py
params: setup
	$(PY) -m hand_mesh_ros.config $(CURDIR)

test: setup
	$(PY) -m pytest -q test $(PYTEST_ARGS)

demo: setup
	$(PY) -m hand_mesh_ros.demo --input $(INPUT) $(DEMO_ARGS)

bench: setup
	$(PY) benchmarks/bench_pipeline.py --input $(INPUT) $(BENCH_ARGS)

bench-latency: setup
	$(PY) benchmarks/bench_latency.py --input $(INPUT) $(BENCH_ARGS)

bench-hamer: setup
	$(PY) benchmarks/bench_hamer.py $(BENCH_ARGS)

bench-tracking: setup
	$(PY) benchmarks/bench_tracking.py --input $(INPUT) $(BENCH_ARGS)

bench-detector: setup
	$(PY) benchmarks/bench_detector.py $(BENCH_ARGS)

bench-range: setup
	$(PY) benchmarks/bench_range.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build install log *.egg-info
