# The two commands: `make demo` and `make test`. Both set everything up themselves.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# Sources the venv, and the colcon install space when one exists.
ACTIVATE := source $(VENV)/bin/activate && export PYTHONUNBUFFERED=1
DEMO_OUT ?= runs/demo
# Keep tests off the default DDS domain so they never talk to a user's robot.
export ROS_DOMAIN_ID ?= 42

.PHONY: setup build test lint demo bench clean

setup:
	@tools/setup_env.sh

build: setup
	$(ACTIVATE) && colcon --log-base log build --base-paths . --build-base build --install-base install

test: build
	$(ACTIVATE) && source install/setup.bash && \
	  colcon --log-base log test --base-paths . --build-base build --install-base install \
	    --event-handlers console_direct+ --pytest-args -p no:cacheprovider; \
	  status=$$?; colcon test-result --test-result-base build --verbose && exit $$status

lint: setup
	$(ACTIVATE) && python -m pytest -q test/test_flake8.py test/test_pep257.py

demo: build
	$(ACTIVATE) && source install/setup.bash && vrl demo --out $(DEMO_OUT)

bench: build
	$(ACTIVATE) && source install/setup.bash && vrl bench all --policy-state bc_state_lift --policy-image bc_image_lift --json runs/bench/bench.json

clean:
	rm -rf build install log
